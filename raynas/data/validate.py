"""Checks on everything that enters the dataset store, with errors that say how to fix it."""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Sequence

import numpy as np

from raynas.errors import RaynasError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_SIDE = 4
MAX_SIDE = 1024  # stored images are at most this many pixels a side (search uses 16-64)
MAX_CLASSES = 100_000  # far beyond any image-classification benchmark (ImageNet-21k has 21,841)


def check_image_size(size: int | None, option: str = "--image-size") -> int | None:
    """A target side length in MIN_SIDE..MAX_SIDE (None: keep the size)."""
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))
                             or not MIN_SIDE <= size <= MAX_SIDE):
        raise RaynasError(f"{option} must be at least {MIN_SIDE} and at most {MAX_SIDE}, got {size}",
                          f"pass a side length from {MIN_SIDE} to {MAX_SIDE} pixels, such as 32 or 64")
    return size


def check_channels(channels: int | None, option: str = "--channels") -> int | None:
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise RaynasError(f"{option} must be 1 or 3, got {channels}", "pass 1 for gray or 3 for colour")
    return channels


def check_seed(seed: int, option: str = "--seed") -> int:
    """Split seeds are whole numbers >= 0 (what numpy's generators accept)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RaynasError(f"{option} must be a whole number 0 or more, got {seed}", "pass --seed 0, 1, 2, ...")
    return int(seed)


def memory_budget() -> int:
    """Bytes one import may fill with decoded images: half of the machine's memory (8 GiB if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return 8 << 30


def check_memory(nbytes: int, what: str) -> None:
    """Refuse, before allocating, an import whose arrays would not fit in memory."""
    budget = memory_budget()
    if nbytes > budget:
        raise RaynasError(
            f"{what} would take {nbytes / 2**30:.1f} GiB of memory, more than the {budget / 2**30:.1f} GiB "
            "(half of this machine's memory) an import may use",
            "pass a smaller --image-size, or import a subset of the images",
        )


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
    check_max_side(h, w)
    return images


def check_max_side(h: int, w: int, source: str = "") -> None:
    if max(h, w) > MAX_SIDE:
        raise RaynasError(
            f"{source + ': ' if source else ''}images are {h}x{w} pixels, larger than the maximum "
            f"{MAX_SIDE}x{MAX_SIDE} a dataset stores",
            f"pass --image-size N (N from {MIN_SIDE} to {MAX_SIDE}) to centre-crop and resize them",
        )


def check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    if len(class_names) > MAX_CLASSES:
        raise RaynasError(f"{len(class_names):,} classes is more than the {MAX_CLASSES:,} a dataset may have",
                          "check the labels: each distinct label value is one class")
    names = tuple(str(c) for c in class_names)
    if len(names) < 2:
        raise RaynasError(
            f"a classification dataset needs at least 2 classes, got {len(names)}",
            "add images of at least two classes",
        )
    if any(not c.strip() for c in names):
        raise RaynasError("a class name is empty", "give every class a non-empty name")
    dupes = sorted(c for c, n in Counter(names).items() if n > 1)
    if dupes:
        raise RaynasError(f"class names are repeated: {dupes}", "give every class a distinct name")
    return names


def integer_labels(labels: np.ndarray) -> np.ndarray:
    """Integer labels as they are; whole-number floats (up to 2**53) as int64; anything else refused."""
    if labels.dtype.kind in "iu":
        return labels
    if (labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
            and np.all(np.abs(labels) <= 2**53)):
        return labels.astype(np.int64)
    raise RaynasError(f"labels have dtype {labels.dtype}, expected integers", "store class indices 0..K-1")


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
    labels = integer_labels(labels)
    k = len(class_names)
    bad = labels[(labels < 0) | (labels >= k)]
    if bad.size:
        raise RaynasError(
            f"label {int(bad[0])} is out of range for {k} classes (valid: 0..{k - 1})",
            "fix the labels or add the missing class names",
        )
    labels = labels.astype(np.int64)  # in range now; bincount refuses uint64
    counts = np.bincount(labels, minlength=k)
    for idx in np.flatnonzero(counts < min_per_class):
        raise RaynasError(
            f"class '{class_names[idx]}' has {counts[idx]} images, too few for a train/val/test split",
            f"give every class at least {min_per_class} images or remove the class",
        )
    return labels.astype(np.int32)
