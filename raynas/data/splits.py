"""Seeded, stratified train/val/test splits.

Every class lands in every split with a non-zero fraction, so the weight step (train), the
architecture step (val) and the final evaluation (test) all see every class.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from raynas.errors import RaynasError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.5, 0.25, 0.25)


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(not np.isfinite(f) or f <= 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise RaynasError(
            f"split fractions {list(fractions)} are not three positive numbers summing to 1",
            "give train,val,test fractions such as 0.5,0.25,0.25",
        )
    return fr  # type: ignore[return-value]


def min_images_per_class(fractions: Sequence[float] = DEFAULT_FRACTIONS) -> int:
    """The smallest class that can still put one image into each split."""
    return len(check_fractions(fractions))


def _held_out_counts(n: int, f_val: float, f_test: float, cls, fractions) -> tuple[int, int]:
    """Val and test sizes for a class of ``n``: rounded, at least one each, leaving train at least one.

    Rounding val and test independently can take every image (4 images at 0.45/0.45 round to
    2 + 2), so the larger held-out share gives way until train keeps one.
    """
    if n < min_images_per_class(fractions):
        raise RaynasError(
            f"class {cls} has {n} images, too few for a train/val/test split",
            f"give every class at least {min_images_per_class(fractions)} images",
        )
    n_val, n_test = max(1, round(n * f_val)), max(1, round(n * f_test))
    while n - n_val - n_test < 1:
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def stratified_split(
    labels: np.ndarray,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> np.ndarray:
    """Assign each index to a split; returns an array of split names.

    Per class: shuffle with the seed, give val and test ``round(n * fraction)`` images
    (at least one each) and the rest to train.
    """
    f_train, f_val, f_test = check_fractions(fractions)
    labels = np.asarray(labels)
    out = np.empty(len(labels), dtype="<U5")
    rng = np.random.default_rng(seed)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_val, n_test = _held_out_counts(len(idx), f_val, f_test, cls, fractions)
        out[idx[:n_val]] = "val"
        out[idx[n_val : n_val + n_test]] = "test"
        out[idx[n_val + n_test :]] = "train"
    return out
