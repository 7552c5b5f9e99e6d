"""Seeded, class-stratified subsets: the same dataset always yields the same subset.

Distances computed from subsets are only reproducible (and a dataset only has distance 0 to
itself) when the subset is a pure function of the labels and one fixed seed, so every
subset in :mod:`raynas.ot` is drawn here.
"""

from __future__ import annotations

import numpy as np


def allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` draws over classes in proportion to ``counts`` (largest remainder).

    When ``total`` leaves room for one draw per non-empty class, classes whose share is
    below one still get one and the rest is shared among the others. No class gets more
    than it has; ``total`` at or above the sum takes everything.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if total >= counts.sum():
        return counts.copy()
    take = np.zeros_like(counts)
    free = counts > 0
    if total >= np.count_nonzero(counts):
        while free.any():
            small = free & ((total - take.sum()) * counts < counts[free].sum())  # share below one
            if not small.any():
                break
            take[small], free = 1, free & ~small
    weights = np.where(free, counts, 0)
    share = (total - take.sum()) * weights / max(int(weights.sum()), 1)
    take += np.floor(share).astype(np.int64)
    left = total - int(take.sum())
    order = np.lexsort((np.arange(len(counts)), -(share - np.floor(share))))  # largest remainder, then class order
    while left > 0:  # one pass suffices in exact arithmetic; the loop guards against rounding
        for c in order:
            if left > 0 and take[c] < counts[c]:
                take[c] += 1
                left -= 1
    return take


# A split longer than this is sampled among the rows of a seeded subset of its row groups, at least
# MIN_GROUPS of them and enough for CANDIDATES times every class's draws (or all its rows): a
# 2,000-image sample of 1M images otherwise touched all 184 row groups, so its reader decompressed
# nearly the whole dataset. Shorter splits (every built-in) are sampled as before.
BLOCK_SAMPLING_ROWS = 50_000
MIN_GROUPS = 8
CANDIDATES = 4


def stratified_group_indices(labels: np.ndarray, groups: np.ndarray, total: int, seed: int) -> np.ndarray:
    """:func:`stratified_indices`, drawn for a long split from a few of its row groups (``groups``:
    each item's row group)."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    if len(labels) <= BLOCK_SAMPLING_ROWS:
        return stratified_indices(labels, total, seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    take = allocate(counts, total)  # in proportion to the whole split, not to the groups drawn from
    want = np.minimum(counts, CANDIDATES * take)
    ids, members = np.unique(groups, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    per_group = np.zeros((len(ids), len(classes)), np.int64)
    np.add.at(per_group, (members, inverse), 1)
    have = np.cumsum(per_group[order], axis=0)
    enough = np.flatnonzero((have >= want).all(axis=1))
    used = max(MIN_GROUPS, int(enough[0]) + 1 if enough.size else len(ids))
    rows = np.flatnonzero(np.isin(members, order[:used]))
    rng = np.random.default_rng(seed)
    picked = [rng.choice(rows[inverse[rows] == c], size=int(k), replace=False) for c, k in enumerate(take)]
    return np.sort(np.concatenate(picked))


def stratified_indices(labels: np.ndarray, total: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified sample of at most ``total`` items, fixed by ``seed``."""
    labels = np.asarray(labels)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    take = allocate(counts, total)
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(inverse == c), size=int(k), replace=False)
              for c, k in enumerate(take)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
