"""The linear probe that ranks sources by how well their frozen features separate the target."""

import numpy as np

from raynas.transfer.probe import probe_accuracy


def test_the_probe_scores_separable_features_high_and_noise_near_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 100)
    signal = np.eye(4)[labels] * 3 + rng.normal(size=(400, 4)) * 0.3
    noise = rng.normal(size=(400, 16))
    train, val = np.arange(400) % 2 == 0, np.arange(400) % 2 == 1
    assert probe_accuracy(signal[train], labels[train], signal[val], labels[val]) == 1.0
    assert probe_accuracy(noise[train], labels[train], noise[val], labels[val]) < 0.45  # chance is 0.25
