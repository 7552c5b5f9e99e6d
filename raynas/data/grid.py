"""A labelled sample grid: one row per class, a few images each (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raynas.data.format import ImageDataset
from raynas.errors import RaynasError
from raynas.figures import pyplot, save_figure

# A grid is for looking at: beyond these, drawing takes minutes and gigabytes (a subplot per image).
MAX_PER_CLASS = 32
MAX_GRID_CLASSES = 64


def check_grid_size(per_class: int, max_classes: int) -> None:
    """Refuse grid sizes out of range before a dataset is loaded or a figure made."""
    for flag, value, high in (("--per-class", per_class, MAX_PER_CLASS), ("--max-classes", max_classes,
                                                                          MAX_GRID_CLASSES)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= high:
            raise RaynasError(f"{flag} must be from 1 to {high}, got {value}",
                              f"pass {flag} between 1 and {high} (a grid is a sample to look at)")


def sample_grid(ds: "ImageDataset | StoredDataset", out: str | Path, per_class: int = 8, max_classes: int = 16,
                seed: int = 0) -> Path:
    """Draw ``per_class`` random images of the first ``max_classes`` classes into a PNG."""
    check_grid_size(per_class, max_classes)
    plt = pyplot()
    rng = np.random.default_rng(seed)
    classes = list(range(min(ds.info.num_classes, max_classes)))
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.7 + 1.2, len(classes) * 0.7 + 0.6),
                             squeeze=False)
    labels = ds.labels
    picks = []
    for cls in classes:
        idx = np.flatnonzero(labels == cls)
        picks.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    images = iter(ds.images_at(np.concatenate(picks)))  # one read of only these (a stored dataset's row groups)
    for row, (cls, pick) in enumerate(zip(classes, picks)):
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(pick):
                img = next(images)
                ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255,
                          interpolation="nearest")
        axes[row, 0].set_ylabel(ds.info.class_names[cls], rotation=0, ha="right", va="center", fontsize=9)
    shown = "" if len(classes) == ds.info.num_classes else f", first {len(classes)} of {ds.info.num_classes} classes"
    fig.suptitle(f"{ds.info.name} ({ds.info.domain}, {ds.info.num_images} images{shown})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)
