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
    (np.zeros((2, 8, 8, 3), np.uint8), "expected \\(N, C, H, W\\)"),
    (np.zeros((2, 2, 8, 8), np.uint8), "C = 1 or 3"),
    (np.zeros((0, 1, 8, 8), np.uint8), "no images"),
    (np.zeros((2, 1, 3, 8), np.uint8), "smaller than the minimum"),
])
def test_bad_images(images, message):
    with pytest.raises(RaynasError, match=message):
        check_images(images)


@settings(max_examples=25, deadline=None)
@given(dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.float32, np.int64]),
       shape=st.lists(st.integers(0, 6), min_size=3, max_size=5))
def test_images_accepted_exactly_when_uint8_nchw_with_one_or_three_channels(dtype, shape):
    images = np.zeros(shape, dtype)
    valid = (dtype == np.uint8 and len(shape) == 4 and shape[1] in (1, 3) and shape[0] >= 1
             and min(shape[2:]) >= 4)
    try:
        out = check_images(images)
    except RaynasError:
        assert not valid
    else:
        assert valid and out is images


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 1, 2]), "mismatched lengths: 4 images but 3 labels"),
    (np.array([0, 1, 5, 1]), "label 5 is out of range for 2 classes"),
    (np.array([0, -1, 1, 1]), "label -1 is out of range"),
    (np.array(["a", "b", "a", "b"]), "expected integers"),
    (np.array([0.0, 1.5, 1.0, 0.0]), "expected integers"),
    (np.array([0.0, np.nan, 1.0, 0.0]), "expected integers"),
    (np.array([[0, 1], [1, 0]]), "flat array"),
])
def test_bad_labels(labels, message):
    with pytest.raises(RaynasError, match=message):
        check_labels(labels, 4, ["x", "y"], min_per_class=1)


def test_class_too_small_for_a_split_is_named():
    with pytest.raises(RaynasError, match="class 'rare' has 2 images") as err:
        check_labels(np.array([0, 0, 0, 1, 1]), 5, ["common", "rare"], min_per_class=3)
    assert "at least 3 images" in str(err.value)


def test_unused_class_is_named():
    with pytest.raises(RaynasError, match="class 'ghost' has 0 images"):
        check_labels(np.array([0, 0, 0, 1, 1, 1]), 6, ["a", "b", "ghost"], min_per_class=3)


@settings(max_examples=25, deadline=None)
@given(labels=st.lists(st.integers(-3, 6), min_size=1, max_size=40), k=st.integers(2, 5),
       min_per_class=st.integers(1, 4), as_float=st.booleans())
def test_labels_accepted_exactly_when_in_range_and_every_class_populated(labels, k, min_per_class, as_float):
    labels = np.array(labels, dtype=np.float64 if as_float else np.int64)
    ints = labels.astype(np.int64)
    in_range = ints.min() >= 0 and ints.max() < k
    valid = in_range and np.all(np.bincount(ints, minlength=k) >= min_per_class)
    try:
        out = check_labels(labels, len(labels), [str(i) for i in range(k)], min_per_class=min_per_class)
    except RaynasError as exc:
        assert not valid
        assert ("out of range" in str(exc)) == (not in_range)
    else:
        assert valid and out.dtype == np.int32
        np.testing.assert_array_equal(out, ints)


@pytest.mark.parametrize("names, message", [([], "at least 2 classes, got 0"), (["only"], "at least 2 classes"),
                                            (["a", "a"], "repeated"), (["a", " "], "empty"),
                                            (["a", ""], "empty")])
def test_bad_class_names(names, message):
    with pytest.raises(RaynasError, match=message):
        check_class_names(names)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["", " ", "a", "b", "cat", "dog", "a ", "7"]), max_size=6))
def test_class_names_accepted_exactly_when_two_or_more_distinct_and_non_blank(names):
    valid = len(names) >= 2 and all(n.strip() for n in names) and len(set(names)) == len(names)
    try:
        out = check_class_names(names)
    except RaynasError:
        assert not valid
    else:
        assert valid and out == tuple(names)


def test_class_names_become_strings():
    assert check_class_names(np.array([3, 1, 2])) == ("3", "1", "2")


@pytest.mark.parametrize("name", ["", "Upper", "-lead", ".lead", "has space", "a/b", "x" * 65, 7])
def test_bad_names(name):
    with pytest.raises(RaynasError, match="not valid"):
        check_name(name)


@pytest.mark.parametrize("name", ["a", "mnist5k-rot", "my_set.v2", "0", "x" * 64])
def test_good_names(name):
    assert check_name(name) == name


def test_float_labels_that_are_whole_numbers_are_accepted():
    ds = make_dataset("f", np.zeros((6, 1, 4, 4), np.uint8), np.array([0.0, 1.0] * 3), ["a", "b"], domain="t")
    assert ds.labels.dtype == np.int32
    np.testing.assert_array_equal(ds.labels, [0, 1] * 3)
