"""Fixed BatchNorm statistics make a supernet a function of each image."""

from __future__ import annotations

import pytest
import torch

from raynas.space.calibration import CalibratedSupernet, calibrate
from raynas.space.config import SpaceConfig
from raynas.space.multihead import create_multihead_supernet
from raynas.space.supernet import create_supernet

SPACE = SpaceConfig(channels=4, cells=3, image_size=16)


def test_statistics_of_one_batch_reproduce_that_batchs_training_output():
    x = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    network = create_supernet(SPACE, seed=0)
    with torch.no_grad():
        batch_statistics = network(x)
        calibrated = calibrate(network, [x])
        # the module BatchNorms keep the unbiased variance (N/(N-1) with N = 64*16*16 pixels): a small gap
        assert torch.allclose(calibrated(x), batch_statistics, atol=1e-3)
        assert torch.allclose(calibrated(x[:1]), calibrated(x)[:1], atol=1e-6)  # no batch dependence


def test_statistics_average_over_batches_and_survive_a_state_dict_round_trip():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(32, 1, 16, 16, generator=gen), torch.randn(32, 1, 16, 16, generator=gen) + 2.0
    network = create_multihead_supernet(SPACE, [10, 5], seed=0)
    network.select(1)
    calibrated = calibrate(network, [a, b])
    stem = calibrated.supernet.stem[1]
    with torch.no_grad():  # the stem's statistics: the average of the two batches' (equal sizes)
        conv = calibrated.supernet.stem[0]
        means = [conv(x.contiguous(memory_format=torch.channels_last)).mean(dim=(0, 2, 3)) for x in (a, b)]
    assert torch.allclose(stem.running_mean, (means[0] + means[1]) / 2, atol=1e-5)
    twice = calibrate(create_multihead_supernet(SPACE, [10, 5], seed=0), [a, a])
    once = calibrate(create_multihead_supernet(SPACE, [10, 5], seed=0), [a])
    assert len(once.channels) > 10
    for i in range(len(once.channels)):  # the same batch twice: the same statistics as once
        assert torch.allclose(getattr(twice, f"mean_{i}"), getattr(once, f"mean_{i}"), atol=1e-5)
        assert torch.allclose(getattr(twice, f"var_{i}"), getattr(once, f"var_{i}"), atol=1e-4)

    other = create_multihead_supernet(SPACE, [10, 5], seed=7)
    other.select(1)
    rebuilt = CalibratedSupernet(other, calibrated.channels)
    rebuilt.load_state_dict(calibrated.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(a[:4]), calibrated(a[:4]))


def test_an_uncalibrated_supernet_is_untouched_by_a_calibrated_one():
    x = torch.randn(8, 1, 16, 16)
    plain, copy = create_supernet(SPACE, seed=0), create_supernet(SPACE, seed=0)
    calibrate(copy, [x])(x)  # runs with fixed statistics, then leaves the hook unset
    with torch.no_grad():
        assert torch.equal(plain(x), create_supernet(SPACE, seed=0)(x))
    with pytest.raises(ValueError, match="at least one batch"):
        calibrate(create_supernet(SPACE, seed=0), [])
