"""Mapping a source supernet onto a target: copies, stem adaptation, heads, modes, temperature."""

import numpy as np
import pytest
import torch

from raynas.errors import RaynasError
from raynas.space.config import PRESETS
from raynas.space.multihead import create_multihead_supernet
from raynas.space.supernet import create_supernet
from raynas.transfer.mapping import LUMA, adapt_stem, check_compatible, transfer_state
from raynas.zoo.store import state_to_numpy


def _net(in_channels=1, classes=10, seed=0, preset="tiny", **changes):
    return create_supernet(PRESETS.get(preset).space(in_channels=in_channels, num_classes=classes, **changes), seed=seed)


def _same(a, b, key):
    return torch.equal(a.state_dict()[key], b.state_dict()[key])


def test_same_space_copies_every_tensor():
    src, tgt = _net(seed=1), _net(seed=2)
    report = transfer_state(state_to_numpy(src.state_dict()), tgt)
    assert len(report.copied) == len(src.state_dict()) and not (report.adapted or report.reinitialised or report.kept)
    assert all(_same(src, tgt, k) for k in src.state_dict())
    x = torch.randn(4, 1, 8, 8)
    src.eval(), tgt.eval()
    torch.testing.assert_close(src(x), tgt(x))


def test_other_class_count_keeps_the_fresh_head_and_other_image_size_copies_the_body():
    src, tgt = _net(classes=10, seed=1), _net(classes=4, seed=2, image_size=16)
    fresh_head = tgt.classifier.weight.detach().clone()
    report = transfer_state(state_to_numpy(src.state_dict()), tgt)
    assert report.reinitialised == ["classifier.weight", "classifier.bias"]
    assert torch.equal(tgt.classifier.weight, fresh_head)
    assert _same(src, tgt, "cells.1.body.sources.0.params.sep_conv_3x3.dw1") and _same(src, tgt, "alphas_reduce")


@pytest.mark.parametrize("source_c, target_c", [(3, 1), (1, 3)])
def test_stem_adaptation_preserves_the_response_to_equivalent_inputs(source_c, target_c):
    src, tgt = _net(in_channels=source_c, seed=1), _net(in_channels=target_c, seed=2)
    report = transfer_state(state_to_numpy(src.state_dict()), tgt)
    assert report.adapted == ["stem.0.weight"]
    rgb = torch.rand(2, 3, 8, 8)
    gray = torch.einsum("nchw,c->nhw", rgb, torch.from_numpy(LUMA))[:, None]
    conv = lambda net, x: torch.nn.functional.conv2d(x, net.stem[0].weight, padding=1)  # noqa: E731
    if source_c == 3:  # a gray image enters the RGB source as three equal channels
        torch.testing.assert_close(conv(tgt, gray), conv(src, gray.expand(-1, 3, -1, -1)))
    else:  # an RGB image enters the gray source as its luma
        torch.testing.assert_close(conv(tgt, rgb), conv(src, gray))


def test_adapt_stem_refuses_other_channel_counts():
    with pytest.raises(RaynasError, match="cannot adapt a stem from 2 to 3"):
        adapt_stem(np.zeros((4, 2, 3, 3), np.float32), 3)


@pytest.mark.parametrize("mode, weights_copied, alphas_copied", [("weights+alphas", True, True),
                                                                 ("weights", True, False),
                                                                 ("alphas", False, True)])
def test_modes(mode, weights_copied, alphas_copied):
    src, tgt = _net(seed=1), _net(seed=2)
    before = {k: v.clone() for k, v in tgt.state_dict().items()}
    transfer_state(state_to_numpy(src.state_dict()), tgt, mode=mode)
    assert _same(src, tgt, "alphas_normal") is alphas_copied
    assert torch.equal(tgt.alphas_normal, before["alphas_normal"]) is not alphas_copied
    assert _same(src, tgt, "stem.0.weight") is weights_copied
    assert torch.equal(tgt.stem[0].weight, before["stem.0.weight"]) is not weights_copied


def test_alpha_temperature_softens_towards_uniform():
    src, tgt = _net(seed=1), _net(seed=2)
    with torch.no_grad():
        src.alphas_normal.mul_(1000)  # a confident source
    transfer_state(state_to_numpy(src.state_dict()), tgt, alpha_temperature=4.0)
    torch.testing.assert_close(tgt.alphas_normal, src.alphas_normal / 4)
    entropy = lambda a: float(-(a.softmax(-1) * a.log_softmax(-1)).sum(-1).mean().detach())  # noqa: E731
    assert entropy(tgt.alphas_normal) > entropy(src.alphas_normal)
    with pytest.raises(RaynasError, match="temperature must be positive"):
        transfer_state(state_to_numpy(src.state_dict()), tgt, alpha_temperature=0)


def test_unknown_mode():
    with pytest.raises(RaynasError, match="unknown transfer mode 'all'"):
        transfer_state({}, _net(), mode="all")


def test_multi_dataset_source_transfers_all_but_its_heads():
    space = PRESETS.get("tiny").space(in_channels=3, num_classes=10)
    src = create_multihead_supernet(space, [10, 26, 6], seed=1)
    tgt = _net(in_channels=1, classes=5, seed=2)
    report = transfer_state(state_to_numpy(src.state_dict()), tgt)
    assert report.adapted == ["stem.0.weight"] and sorted(report.kept) == ["classifier.bias", "classifier.weight"]
    assert len(report.unused) == 6  # three heads, weight and bias each
    assert _same(src, tgt, "alphas_normal")


def test_partial_channel_tensors_of_another_shape_are_reinitialised():
    src = _net(seed=1)
    tgt = create_supernet(PRESETS.get("tiny").space(in_channels=1, num_classes=10, partial_channels=2, edge_norm=True),
                          seed=2)
    report = transfer_state(state_to_numpy(src.state_dict()), tgt)
    assert any(".params." in k for k in report.reinitialised)
    assert "betas_normal" in report.kept and "alphas_normal" in report.copied


def test_check_compatible():
    base = PRESETS.get("cpu").space()
    check_compatible(base, base.replace(image_size=32, in_channels=3, num_classes=4))
    with pytest.raises(RaynasError, match=r"channels 8 vs 16, cells 5 vs 8") as err:
        check_compatible(base, PRESETS.get("gpu").space(), "zoo entry 'x'")
    assert "zoo entry 'x'" in str(err.value) and "--preset" in str(err.value)
