"""Fitting a warm start's classifier to the target before the search (LP-FT)."""

import numpy as np
import pytest

from raynas.transfer.head import fit_linear_head


def _blobs(classes, n=60, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.asarray(classes), n)
    centres = rng.normal(size=(max(classes) + 1, dim)) * 4
    # features far from zero mean and unit scale, as pooled activations are: the fold must undo that
    return (centres[labels] + rng.normal(size=(len(labels), dim))) * 7 + 30, labels


@pytest.mark.parametrize("classes, num_classes", [([0, 1, 2, 3], 4), ([0, 1], 2), ([0, 2, 3], 5)])
def test_the_fitted_head_acts_on_raw_features_and_never_predicts_an_unseen_class(classes, num_classes):
    features, labels = _blobs(classes)
    weight, bias, train_acc = fit_linear_head(features, labels, num_classes)
    assert weight.shape == (num_classes, features.shape[1]) and bias.shape == (num_classes,)
    predicted = (features @ weight.T + bias).argmax(1)
    assert np.mean(predicted == labels) == pytest.approx(train_acc) and train_acc > 0.9
    unseen = sorted(set(range(num_classes)) - set(classes))
    assert not np.isin(predicted, unseen).any() and not weight[unseen].any()


def test_a_sample_of_one_class_leaves_a_neutral_head():
    features, labels = _blobs([3])
    weight, bias, train_acc = fit_linear_head(features, labels, 4)
    assert not weight.any() and not bias.any() and train_acc == 1.0
