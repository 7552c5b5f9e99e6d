"""Small synthetic embeddings for unit tests (no encoder, no dataset files)."""

from __future__ import annotations

import numpy as np

from raynas.ot import EmbeddingConfig
from raynas.ot.embedding import summarise

SMALL = EmbeddingConfig(rank=4, sample_size=40, slices=32, quantiles=16, moments=3)


def synthetic(name: str, *, classes: int = 3, n: int = 90, dim: int = 4, shift: float = 0.0, seed: int = 0,
              config: EmbeddingConfig = SMALL, version: str = "test-v1"):
    """A small embedding of Gaussian classes, built from features directly (no encoder)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(size=(classes, dim)) * 3
    x = centres[labels] + rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) * 0.5 + shift
    return summarise(x, labels, dataset=name, content_hash=f"{seed:064x}", encoder_version=version, config=config)
