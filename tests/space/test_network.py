import pytest
import torch

from raynas.space.genotype import Genotype
from raynas.space.network import DiscreteNetwork, drop_path

GENOTYPE = Genotype(
    normal=(("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("max_pool_3x3", 0),
            ("sep_conv_5x5", 1), ("avg_pool_3x3", 3)),
    reduce=(("max_pool_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 2), ("dil_conv_3x3", 0),
            ("skip_connect", 3), ("avg_pool_3x3", 1)),
    nodes=3)


@pytest.mark.parametrize("in_channels, size, classes", [(1, 8, 10), (3, 16, 4), (1, 12, 2)])
def test_any_input_channels_size_and_classes(in_channels, size, classes):
    net = DiscreteNetwork(GENOTYPE, in_channels, classes, channels=4, cells=3)
    logits, aux = net(torch.randn(2, in_channels, size, size))
    assert logits.shape == (2, classes) and aux is None


def test_auxiliary_head_only_in_training():
    net = DiscreteNetwork(GENOTYPE, 1, 5, channels=4, cells=4, auxiliary=True)
    _, aux = net(torch.randn(2, 1, 16, 16))
    assert aux.shape == (2, 5)
    net.eval()
    assert net(torch.randn(2, 1, 16, 16))[1] is None


def test_drop_path_keeps_the_mean_and_zeroes_whole_samples():
    torch.manual_seed(0)
    x = torch.ones(4000, 2, 3, 3)
    y = drop_path(x, 0.25)
    per_sample = y.flatten(1)
    assert per_sample[:, 0].unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    assert (per_sample == per_sample[:, :1]).all()
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)
    assert drop_path(x, 0.0) is x
