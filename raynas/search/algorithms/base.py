"""The interface every bilevel search algorithm implements, and the registry of them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from raynas.registry import Registry
from raynas.search.config import SearchConfig
from raynas.space.config import SpaceConfig
from raynas.space.supernet import Supernet


@dataclass
class StepContext:
    """What an architecture step may use: the model, both optimisers and the current weight LR."""

    model: Supernet
    w_optimizer: torch.optim.Optimizer
    a_optimizer: torch.optim.Optimizer
    config: SearchConfig
    lr: float


@contextlib.contextmanager
def frozen(params: Sequence[torch.nn.Parameter]) -> Iterator[None]:
    """Skip gradients of ``params`` inside the block (an alpha step needs no weight gradients)."""
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


class SearchAlgorithm:
    """One DARTS-family method: how it shapes the space and how it updates the alphas.

    The weight step (SGD on the train split) is the same for all and lives in the loop.
    """

    name = "base"
    default_a_lr = 3e-4
    default_warmup_fraction = 0.0

    def __init__(self, config: SearchConfig):
        self.config = config

    def configure_space(self, space: SpaceConfig) -> SpaceConfig:
        return space

    def warmup_epochs(self) -> int:
        if self.config.warmup_epochs is not None:
            return self.config.warmup_epochs
        return int(round(self.default_warmup_fraction * self.config.epochs))

    def a_lr(self) -> float:
        """The configured alpha LR, else the paper's default scaled by the preset (short runs: 10x)."""
        if self.config.a_lr is not None:
            return self.config.a_lr
        from raynas.space.config import PRESETS

        return self.default_a_lr * PRESETS.get(self.config.preset).arch_lr_scale

    def arch_loss(self, model: Supernet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)

    def arch_step(self, ctx: StepContext, train: tuple[torch.Tensor, torch.Tensor],
                  val: tuple[torch.Tensor, torch.Tensor]) -> float:
        """First-order update: the gradient of the val loss with respect to the alphas."""
        ctx.a_optimizer.zero_grad(set_to_none=True)
        with frozen(ctx.model.weight_parameters()):
            loss = self.arch_loss(ctx.model, *val)
            loss.backward()
        ctx.a_optimizer.step()
        return float(loss.detach())


ALGORITHMS: Registry[type[SearchAlgorithm]] = Registry("search algorithm")


def create_algorithm(config: SearchConfig) -> SearchAlgorithm:
    return ALGORITHMS.get(config.algo)(config)
