"""Seeded, class-stratified subsets."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raynas.ot.sampling import allocate, stratified_group_indices, stratified_indices


@given(counts=st.lists(st.integers(0, 50), min_size=1, max_size=12), total=st.integers(0, 400))
@settings(max_examples=200, deadline=None)
def test_allocation_is_exact_bounded_and_covers_classes(counts, total):
    counts = np.array(counts)
    take = allocate(counts, total)
    assert take.sum() == min(total, counts.sum())
    assert np.all(take >= 0) and np.all(take <= counts)
    if np.count_nonzero(counts) <= total:  # room for every class: none is left out
        assert np.all(take[counts > 0] >= 1)


@given(counts=st.lists(st.integers(1, 200), min_size=2, max_size=8), total=st.integers(20, 300))
@settings(max_examples=100, deadline=None)
def test_allocation_is_proportional_up_to_rounding_and_floors(counts, total):
    counts = np.array(counts)
    if total >= counts.sum():
        return
    take = allocate(counts, total)
    ideal = total * counts / counts.sum()
    lifted = np.clip(1 - ideal, 0, None).sum()  # what the one-per-class floor borrows from the others
    assert np.all(np.abs(take - ideal) < 1 + lifted + 1e-9)
    if lifted == 0:
        assert np.all(np.abs(take - ideal) < 1)


def test_allocation_examples():
    assert allocate(np.array([10, 10, 10]), 15).tolist() == [5, 5, 5]
    assert allocate(np.array([90, 10]), 10).tolist() == [9, 1]
    assert allocate(np.array([98, 1, 1]), 10).tolist() == [8, 1, 1]  # small classes keep one each
    assert allocate(np.array([3, 4]), 100).tolist() == [3, 4]
    assert allocate(np.array([5, 5]), 0).tolist() == [0, 0]


@pytest.mark.parametrize("total", [1, 7, 50, 1000])
def test_stratified_indices_are_sorted_unique_deterministic(total):
    labels = np.repeat([3, 1, 2], [100, 30, 5])
    idx = stratified_indices(labels, total, seed=0)
    assert np.array_equal(idx, stratified_indices(labels, total, seed=0))
    assert len(idx) == min(total, len(labels)) and np.all(np.diff(idx) > 0)
    if total >= 3:
        assert set(labels[idx]) == {1, 2, 3}
    if total == 50:
        assert np.bincount(labels[idx]).tolist() == [0, 11, 2, 37]


def test_another_seed_draws_another_subset():
    labels = np.arange(1000) % 4
    assert not np.array_equal(stratified_indices(labels, 100, 0), stratified_indices(labels, 100, 1))


def test_a_short_split_is_sampled_as_before_whatever_its_row_groups():
    labels = np.arange(5000) % 7
    assert np.array_equal(stratified_group_indices(labels, np.arange(5000) // 100, 300, 0),
                          stratified_indices(labels, 300, 0))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_long_split_is_sampled_from_a_few_row_groups_with_every_class_in_proportion(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, 200_000)
    labels[rng.choice(200_000, 30, replace=False)] = 10  # a rare class, scattered
    groups = np.arange(200_000) // 1000
    idx = stratified_group_indices(labels, groups, 2000, seed)
    assert np.array_equal(idx, stratified_group_indices(labels, groups, 2000, seed)) and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels, minlength=11)
    assert np.bincount(labels[idx], minlength=11).tolist() == allocate(counts, 2000).tolist()
    used = np.unique(groups[idx])
    assert len(used) < 200 and len(used) >= 8  # a few groups, or as many as the rare class needs


def test_a_long_split_of_even_classes_reads_a_handful_of_row_groups():
    labels = np.arange(200_000) % 10
    used = np.unique((np.arange(200_000) // 1000)[stratified_group_indices(labels, np.arange(200_000) // 1000,
                                                                            2000, 0)])
    assert len(used) == 8  # 800 candidates a class need 8 groups of 100 each
