"""A supernet with one classifier head per dataset, for multi-dataset pretraining.

Stem, cells and alphas are shared by all datasets; each dataset keeps its own linear head
(label spaces differ). :meth:`MultiHeadSupernet.select` picks the head the next forward
passes use, so search algorithms call the model exactly as they call a :class:`Supernet`.
State-dict keys are the supernet's, with ``heads.<i>.*`` in place of ``classifier.*``, so
transfer onto a single-dataset supernet copies everything but the heads.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from raynas.space.config import SpaceConfig
from raynas.space.supernet import Supernet


class MultiHeadSupernet(Supernet):
    def __init__(self, space: SpaceConfig, class_counts: Sequence[int], impl: str = "fused",
                 channels_last: bool = True):
        super().__init__(space, impl, channels_last)
        del self.classifier
        self.heads = nn.ModuleList(nn.Linear(self.feature_dim, k) for k in class_counts)
        self.active = 0

    def select(self, head: int) -> None:
        if not 0 <= head < len(self.heads):
            raise IndexError(f"head {head} of {len(self.heads)}")
        self.active = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads[self.active](self.features(x))


def create_multihead_supernet(space: SpaceConfig, class_counts: Sequence[int], impl: str = "fused",
                              seed: int | None = None) -> MultiHeadSupernet:
    if seed is not None:
        torch.manual_seed(seed)
    return MultiHeadSupernet(space, class_counts, impl)
