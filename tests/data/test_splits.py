"""Stratified splits: seeded, every class in every split, the asked fractions, clear refusals."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raynas.data.splits import SPLITS, check_fractions, min_images_per_class, stratified_split
from raynas.errors import RaynasError


def test_deterministic_per_seed_and_different_across_seeds():
    labels = np.arange(200) % 4
    a, b = stratified_split(labels, seed=3), stratified_split(labels, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, stratified_split(labels, seed=4))
    # the seed changes which images go where, not how many
    for s in SPLITS:
        assert (a == s).sum() == (stratified_split(labels, seed=4) == s).sum()


def test_default_fractions_on_a_balanced_set():
    split = stratified_split(np.repeat(np.arange(3), 40))
    assert split.dtype.kind == "U" and set(split) == set(SPLITS)
    assert [(split == s).sum() for s in SPLITS] == [60, 30, 30]


@st.composite
def _fractions(draw):
    """Three positive fractions summing to 1 (each at least 0.1)."""
    weights = [draw(st.integers(1, 8)) for _ in range(3)]
    total = sum(weights)
    raw = [0.1 + 0.7 * w / total for w in weights]
    return (raw[0], raw[1], 1.0 - raw[0] - raw[1])


@settings(max_examples=25, deadline=None)
@given(data=st.data(), fractions=_fractions(), seed=st.integers(0, 1000))
def test_every_class_in_every_split_with_roughly_the_asked_fractions(data, fractions, seed):
    # classes large enough for the train share to survive rounding of the val and test shares
    smallest = max(min_images_per_class(fractions), math.ceil(3 / fractions[0]))
    counts = data.draw(st.lists(st.integers(smallest, smallest + 60), min_size=2, max_size=6))
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
    split = stratified_split(labels, fractions, seed)
    assert len(split) == len(labels) and set(split) <= set(SPLITS)
    np.testing.assert_array_equal(split, stratified_split(labels, fractions, seed))
    for cls, n in enumerate(counts):
        mine = split[labels == cls]
        for s, f in zip(SPLITS, fractions):
            assert (mine == s).sum() >= 1
            assert abs((mine == s).sum() - f * n) <= 2
        for s, f in zip(SPLITS[1:], fractions[1:]):
            assert abs((mine == s).sum() - f * n) <= 1


@pytest.mark.parametrize("fractions", [(0.1, 0.45, 0.45), (0.2, 0.4, 0.4)])
def test_any_class_of_the_minimum_size_or_more_can_be_split(fractions):
    smallest = min_images_per_class(fractions)
    for n in range(smallest, smallest + 8):
        split = stratified_split(np.zeros(n, int), fractions)
        assert all((split == s).sum() >= 1 for s in SPLITS), n


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.5, 0.25, 0.25, 0.0), (0.5, 0.5, 0.0), (0.6, 0.3, 0.3),
                                       (1.2, -0.1, -0.1), (float("nan"), 0.5, 0.5), (float("inf"), 0.5, 0.5)])
def test_bad_fractions(fractions):
    with pytest.raises(RaynasError, match="split fractions") as err:
        check_fractions(fractions)
    assert "0.5,0.25,0.25" in str(err.value)  # the fix shows an example
    with pytest.raises(RaynasError, match="split fractions"):
        stratified_split(np.arange(30) % 2, fractions)


@settings(max_examples=25, deadline=None)
@given(st.one_of(
    st.lists(st.one_of(st.floats(-1, 2), st.sampled_from([math.nan, math.inf, -math.inf, 0.0])), max_size=4),
    _fractions().map(list)))
def test_fractions_accepted_exactly_when_three_positive_numbers_summing_to_one(fractions):
    valid = (len(fractions) == 3 and all(math.isfinite(f) and f > 0 for f in fractions)
             and abs(sum(fractions) - 1) <= 1e-6)
    try:
        out = check_fractions(fractions)
    except RaynasError:
        assert not valid
    else:
        assert valid and out == tuple(fractions)


@settings(max_examples=25, deadline=None)
@given(fractions=_fractions())
def test_normalised_fractions_are_accepted(fractions):
    assert check_fractions(fractions) == pytest.approx(fractions)
    assert min_images_per_class(fractions) == 3


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(3, 20), min_size=1, max_size=4), small=st.integers(1, 2),
       seed=st.integers(0, 100))
def test_a_class_of_one_or_two_images_is_refused(counts, small, seed):
    labels = np.repeat(np.arange(len(counts) + 1), counts + [small])
    with pytest.raises(RaynasError, match=f"class {len(counts)} has {small} images, too few"):
        stratified_split(labels, seed=seed)


def test_too_small_class_message_says_how_many_are_needed():
    with pytest.raises(RaynasError, match="too few") as err:
        stratified_split(np.array([0, 0, 0, 1, 1]))
    assert "at least 3 images" in str(err.value)
