"""Checks on everything that enters the dataset store, with errors that say how to fix it."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from raynas.errors import RaynasError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_SIDE = 4


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise RaynasError(
            f"dataset name {name!r} is not valid",
            "use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def check_images(images: np.ndarray) -> np.ndarray:
    """Images must be a non-empty uint8 array of shape (N, C, H, W) with C in {1, 3}."""
    if not isinstance(images, np.ndarray):
        raise RaynasError(f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise RaynasError(
            f"images have dtype {images.dtype}, expected uint8",
            "scale pixel values to 0..255 and convert with .astype(np.uint8)",
        )
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise RaynasError(
            f"images have shape {images.shape}, expected (N, C, H, W) with C = 1 or 3",
            "stack the images into one array with the channel axis second",
        )
    n, _, h, w = images.shape
    if n == 0:
        raise RaynasError("the dataset has no images", "add images before importing")
    if min(h, w) < MIN_SIDE:
        raise RaynasError(
            f"images are {h}x{w} pixels, smaller than the minimum {MIN_SIDE}x{MIN_SIDE}",
            "use larger images or pass a larger --image-size",
        )
    return images


def check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(c) for c in class_names)
    if len(names) < 2:
        raise RaynasError(
            f"a classification dataset needs at least 2 classes, got {len(names)}",
            "add images of at least two classes",
        )
    if any(not c.strip() for c in names):
        raise RaynasError("a class name is empty", "give every class a non-empty name")
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise RaynasError(f"class names are repeated: {dupes}", "give every class a distinct name")
    return names


def check_labels(labels: np.ndarray, num_images: int, class_names: Sequence[str], min_per_class: int) -> np.ndarray:
    """Labels are integers in [0, K), one per image, with every class populated enough to split."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise RaynasError(f"labels have shape {labels.shape}, expected a flat array of class indices")
    if len(labels) != num_images:
        raise RaynasError(
            f"mismatched lengths: {num_images} images but {len(labels)} labels",
            "give exactly one label per image",
        )
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise RaynasError(
                f"labels have dtype {labels.dtype}, expected integers", "store class indices 0..K-1"
            )
    k = len(class_names)
    bad = labels[(labels < 0) | (labels >= k)]
    if bad.size:
        raise RaynasError(
            f"label {int(bad[0])} is out of range for {k} classes (valid: 0..{k - 1})",
            "fix the labels or add the missing class names",
        )
    counts = np.bincount(labels, minlength=k)
    for idx in np.flatnonzero(counts < min_per_class):
        raise RaynasError(
            f"class '{class_names[idx]}' has {counts[idx]} images, too few for a train/val/test split",
            f"give every class at least {min_per_class} images or remove the class",
        )
    return labels.astype(np.int32)
