"""The linear probe that ranks sources by how well their frozen features separate the target."""

import numpy as np

import pytest

from raynas.transfer.probe import error_cut, probe_accuracy


def test_the_probe_scores_separable_features_high_and_noise_near_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 100)
    signal = np.eye(4)[labels] * 3 + rng.normal(size=(400, 4)) * 0.3
    noise = rng.normal(size=(400, 16))
    train, val = np.arange(400) % 2 == 0, np.arange(400) % 2 == 1
    assert probe_accuracy(signal[train], labels[train], signal[val], labels[val]) == 1.0
    assert probe_accuracy(noise[train], labels[train], noise[val], labels[val]) < 0.45  # chance is 0.25


@pytest.mark.parametrize("accuracy, baseline, cut", [(0.9, 0.6, 0.75), (0.6, 0.6, 0.0), (0.5, 0.6, -0.25),
                                                     (0.98, 0.94, 2 / 3), (1.0, 1.0, 0.0)])
def test_the_error_cut_is_the_share_of_the_random_features_error_a_source_removes(accuracy, baseline, cut):
    assert error_cut(accuracy, baseline) == pytest.approx(cut)


def test_the_scratch_baseline_probes_random_supernets_of_the_searchs_space(suite_home):
    from raynas.data import DatasetStore
    from raynas.space.config import SpaceConfig
    from raynas.transfer.probe import probe_scratch

    ds = DatasetStore(suite_home).load("digits")
    space = SpaceConfig(image_size=8, channels=4, cells=3, nodes=3)
    one = probe_scratch(ds, space, seeds=(0,), max_train=200, max_val=200)
    assert one.source == "scratch" and 0.1 < one.accuracy <= 1.0  # random features carry some signal
    assert probe_scratch(ds, space, seeds=(0,), max_train=200, max_val=200).accuracy == one.accuracy  # seeded
