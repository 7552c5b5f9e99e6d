"""PC-DARTS (Xu et al., 2020): partial channel connections plus edge normalisation."""

from __future__ import annotations

from raynas.errors import RaynasError
from raynas.search.algorithms.base import ALGORITHMS, SearchAlgorithm
from raynas.space.config import SpaceConfig


@ALGORITHMS.register("pcdarts")
class PCDARTS(SearchAlgorithm):
    """Only 1/K of each edge's channels pass through the candidate ops (the rest bypass and are
    shuffled back in), and per-edge betas, softmax-normalised per node, weight the edges."""

    name = "pcdarts"
    default_a_lr = 6e-4
    default_warmup_fraction = 0.3  # PC-DARTS: 15 of 50 epochs
    default_k = 4

    def configure_space(self, space: SpaceConfig) -> SpaceConfig:
        k = self.config.partial_channels
        if k is None:  # the largest K <= 4 that the channel count allows
            k = next(k for k in (self.default_k, 2, 1) if space.channels % (2 * k) == 0)
        elif space.channels % (2 * k):
            raise RaynasError(f"partial_channels K={k} needs channels divisible by {2 * k}, got {space.channels}",
                              "choose a K that divides channels / 2, or more channels")
        return space.replace(partial_channels=k, edge_norm=True)
