import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raynas.data.splits import SPLITS, check_fractions, stratified_split
from raynas.errors import RaynasError


def test_deterministic_per_seed_and_different_across_seeds():
    labels = np.arange(200) % 4
    a, b = stratified_split(labels, seed=3), stratified_split(labels, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, stratified_split(labels, seed=4))


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(3, 60), min_size=2, max_size=6), seed=st.integers(0, 1000))
def test_every_class_in_every_split_with_roughly_the_asked_fractions(counts, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    split = stratified_split(labels, (0.5, 0.25, 0.25), seed)
    for cls, n in enumerate(counts):
        mine = split[labels == cls]
        for s in SPLITS:
            assert (mine == s).sum() >= 1
        assert abs((mine == "val").sum() - 0.25 * n) <= 1
        assert abs((mine == "test").sum() - 0.25 * n) <= 1


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.5, 0.5, 0.0), (0.6, 0.3, 0.3), (1.2, -0.1, -0.1)])
def test_bad_fractions(fractions):
    with pytest.raises(RaynasError, match="split fractions"):
        check_fractions(fractions)


def test_too_small_class():
    with pytest.raises(RaynasError, match="too few"):
        stratified_split(np.array([0, 0, 0, 1, 1]))
