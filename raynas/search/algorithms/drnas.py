"""DrNAS (Chen et al., 2021): Dirichlet distributions over ops, pathwise-sampled, KL-regularised."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raynas.search.algorithms.base import ALGORITHMS, SearchAlgorithm
from raynas.space.config import SpaceConfig
from raynas.space.supernet import Supernet, dirichlet_concentration


@ALGORITHMS.register("drnas")
class DrNAS(SearchAlgorithm):
    """Alphas parameterise Dirichlet concentrations (ELU + 1); every forward pass samples op
    weights with the reparameterised (pathwise) gradient, and the val loss adds
    ``reg_scale`` x KL(Dir(concentration) || Dir(1)) to keep the distributions from collapsing."""

    name = "drnas"
    default_a_lr = 6e-4
    default_warmup_fraction = 0.3

    def configure_space(self, space: SpaceConfig) -> SpaceConfig:
        k = self.config.partial_channels or 1
        return space.replace(mixing="dirichlet", partial_channels=k)

    def kl_regulariser(self, model: Supernet) -> torch.Tensor:
        total = 0.0
        for alphas in (model.alphas_normal, model.alphas_reduce):
            q = torch.distributions.Dirichlet(dirichlet_concentration(alphas))
            p = torch.distributions.Dirichlet(torch.ones_like(alphas))
            total = total + torch.distributions.kl_divergence(q, p).sum()
        return self.config.reg_scale * total

    def arch_loss(self, model: Supernet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y) + self.kl_regulariser(model)
