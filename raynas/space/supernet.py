"""The DARTS search network ("supernet") with its architecture parameters.

The alphas (and PC-DARTS' betas) are ``nn.Parameter``s of the module, so every
``state_dict`` -- checkpoints, zoo entries -- carries them; :meth:`Supernet.arch_parameters`
and :meth:`Supernet.weight_parameters` split them for the two optimisers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from raynas.registry import Registry
from raynas.space.cells import edge_scales
from raynas.space.config import SpaceConfig
from raynas.space.fused import FusedCell
from raynas.space.ops import FactorizedReduce, ReLUConvBN
from raynas.space.reference import ReferenceCell

CELL_IMPLS: Registry[type] = Registry("cell implementation")
CELL_IMPLS.add("fused", FusedCell)
CELL_IMPLS.add("reference", ReferenceCell)
ARCH_PREFIXES = ("alphas_", "betas_")


def dirichlet_concentration(alphas: torch.Tensor) -> torch.Tensor:
    """DrNAS maps unconstrained alphas to positive concentrations with ELU + 1."""
    return F.elu(alphas) + 1.0


class SupernetCell(nn.Module):
    """Input preprocessing plus a body (fused or reference) that mixes all candidate ops."""

    def __init__(self, space: SpaceConfig, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 impl: str):
        super().__init__()
        self.reduction = reduction
        self.pre0 = (FactorizedReduce(c_pp, c, affine=False, track=False) if reduction_prev
                     else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False, track=False))
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False, track=False)
        self.body = CELL_IMPLS.get(impl)(space.ops, space.nodes, c, reduction, space.partial_channels)

    def forward(self, s0, s1, weights, scales):
        return self.body(self.pre0(s0), self.pre1(s1), weights, scales)


class Supernet(nn.Module):
    """Stem, a stack of normal and reduction cells, global pooling and a linear classifier.

    BatchNorm uses batch statistics throughout (``track_running_stats=False``): running
    statistics of a source dataset would be wrong after transfer, and batch statistics keep
    the fused and reference cells exactly equivalent.
    """

    def __init__(self, space: SpaceConfig, impl: str = "fused", channels_last: bool = True):
        super().__init__()
        self.space, self.impl = space, impl
        # NHWC activations: depthwise and 1x1 convs are much faster in this layout on CPU (oneDNN)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        c = space.channels
        c_stem = space.stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(space.in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem, track_running_stats=False))
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        self.cells = nn.ModuleList()
        for i in range(space.cells):
            reduction = i in space.reduction_cells
            if reduction:
                c *= 2
            self.cells.append(SupernetCell(space, c_pp, c_p, c, reduction, reduction_prev, impl))
            c_pp, c_p, reduction_prev = c_p, space.nodes * c, reduction
        self.feature_dim = c_p
        self.classifier = nn.Linear(c_p, space.num_classes)
        shape = (space.num_edges, len(space.ops))
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(shape))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(shape))
        if space.edge_norm:
            self.betas_normal = nn.Parameter(1e-3 * torch.randn(space.num_edges))
            self.betas_reduce = nn.Parameter(1e-3 * torch.randn(space.num_edges))

    # -- parameters -------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.startswith(ARCH_PREFIXES)]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith(ARCH_PREFIXES)]

    def named_weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(ARCH_PREFIXES)]

    # -- how alphas become op weights ------------------------------------------------
    def op_weights(self, kind: str) -> torch.Tensor:
        """Weights used in a forward pass: softmax, or a pathwise Dirichlet sample while training."""
        alphas = getattr(self, f"alphas_{kind}")
        if self.space.mixing == "dirichlet":
            concentration = dirichlet_concentration(alphas)
            if self.training:
                return torch.distributions.Dirichlet(concentration).rsample()
            return concentration / concentration.sum(-1, keepdim=True)
        return F.softmax(alphas, dim=-1)

    def op_probabilities(self, kind: str) -> torch.Tensor:
        """Expected op weights (softmax, or the Dirichlet mean): what the genotype is derived from."""
        alphas = getattr(self, f"alphas_{kind}").detach()
        if self.space.mixing == "dirichlet":
            concentration = dirichlet_concentration(alphas)
            return concentration / concentration.sum(-1, keepdim=True)
        return F.softmax(alphas, dim=-1)

    def edge_weights(self, kind: str) -> torch.Tensor | None:
        if not self.space.edge_norm:
            return None
        return edge_scales(getattr(self, f"betas_{kind}"), self.space.nodes)

    # -- forward ------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled output of the last cell, (B, feature_dim): what the classifier sees."""
        weights = {kind: self.op_weights(kind) for kind in ("normal", "reduce")}
        scales = {kind: self.edge_weights(kind) for kind in ("normal", "reduce")}
        s0 = s1 = self.stem(x).contiguous(memory_format=self.memory_format)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[kind], scales[kind])
        return F.adaptive_avg_pool2d(s1, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def create_supernet(space: SpaceConfig, impl: str = "fused", seed: int | None = None,
                    channels_last: bool = True) -> Supernet:
    """Build a supernet; with ``seed`` the initial weights and alphas are reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    return Supernet(space, impl, channels_last)
