"""Validators: accept what the format can hold, refuse everything else with a clear message."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raynas.data.format import make_dataset
from raynas.data.validate import check_class_names, check_images, check_labels, check_name
from raynas.errors import RaynasError


@pytest.mark.parametrize("images, message", [
    ([[1]], "numpy array"),
    (np.zeros((2, 1, 8, 8), np.float32), "dtype float32"),
    (np.zeros((2, 8, 8), np.uint8), "expected \\(N, C, H, W\\)"),
    (np.zeros((2, 2, 8, 8), np.uint8), "C = 1 or 3"),
    (np.zeros((0, 1, 8, 8), np.uint8), "no images"),
    (np.zeros((2, 1, 3, 8), np.uint8), "smaller than the minimum"),
])
def test_bad_images(images, message):
    with pytest.raises(RaynasError, match=message):
        check_images(images)


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 1, 2]), "mismatched lengths"),
    (np.array([0, 1, 5, 1]), "label 5 is out of range"),
    (np.array([0, -1, 1, 1]), "label -1 is out of range"),
    (np.array(["a", "b", "a", "b"]), "expected integers"),
    (np.array([[0, 1], [1, 0]]), "flat array"),
])
def test_bad_labels(labels, message):
    with pytest.raises(RaynasError, match=message):
        check_labels(labels, 4, ["x", "y"], min_per_class=1)


def test_class_too_small_for_a_split_is_named():
    with pytest.raises(RaynasError, match="class 'rare' has 2 images"):
        check_labels(np.array([0, 0, 0, 1, 1]), 5, ["common", "rare"], min_per_class=3)


@pytest.mark.parametrize("names, message", [(["only"], "at least 2 classes"), (["a", "a"], "repeated"),
                                            (["a", " "], "empty")])
def test_bad_class_names(names, message):
    with pytest.raises(RaynasError, match=message):
        check_class_names(names)


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "has space", "a/b", "x" * 65])
def test_bad_names(name):
    with pytest.raises(RaynasError, match="not valid"):
        check_name(name)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-3, 6), min_size=1, max_size=40), st.integers(2, 5))
def test_labels_accepted_exactly_when_in_range_and_every_class_populated(labels, k):
    labels = np.array(labels)
    valid = labels.min() >= 0 and labels.max() < k and np.all(np.bincount(labels.clip(0), minlength=k)[:k] >= 1)
    try:
        out = check_labels(labels, len(labels), [str(i) for i in range(k)], min_per_class=1)
        assert valid and out.dtype == np.int32
    except RaynasError:
        assert not valid


def test_float_labels_that_are_whole_numbers_are_accepted():
    ds = make_dataset("f", np.zeros((6, 1, 4, 4), np.uint8), np.array([0.0, 1.0] * 3), ["a", "b"], domain="t")
    assert ds.labels.dtype == np.int32
