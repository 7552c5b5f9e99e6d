"""The discrete network built from a genotype, for retraining and evaluation."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from raynas.space.genotype import Genotype
from raynas.space.ops import FactorizedReduce, ReLUConvBN, create_op


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of a branch with probability ``drop_prob`` (scaled to keep the mean)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device).bernoulli_(keep)
    return x * mask / keep


class DiscreteCell(nn.Module):
    def __init__(self, genotype: Genotype, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0)
        edges = genotype.cell("reduce" if reduction else "normal")
        self.inputs = [inp for _, inp in edges]
        self.ops = nn.ModuleList(create_op(op, c, 2 if reduction and inp < 2 else 1) for op, inp in edges)
        self.nodes = genotype.nodes

    def forward(self, s0, s1, drop_prob: float):
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(self.nodes):
            total = 0
            for e in (2 * i, 2 * i + 1):
                h = self.ops[e](states[self.inputs[e]])
                if self.training and not isinstance(self.ops[e], nn.Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):
    """A small classifier on the features at 2/3 depth (DARTS' auxiliary tower, size-agnostic)."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2), nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128),
            nn.ReLU(inplace=True), nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class DiscreteNetwork(nn.Module):
    """Stem, cells from the genotype (reductions at 1/3 and 2/3 depth), optional auxiliary head."""

    def __init__(self, genotype: Genotype, in_channels: int, num_classes: int, channels: int = 16, cells: int = 8,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, stem_multiplier: int = 3):
        super().__init__()
        self.drop_path_prob = drop_path_prob
        c = channels
        c_stem = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        self.cells = nn.ModuleList()
        self.aux_index = 2 * cells // 3
        aux_channels = None
        for i in range(cells):
            reduction = i in (cells // 3, 2 * cells // 3)
            if reduction:
                c *= 2
            self.cells.append(DiscreteCell(genotype, c_pp, c_p, c, reduction, reduction_prev))
            c_pp, c_p, reduction_prev = c_p, genotype.nodes * c, reduction
            if i == self.aux_index:
                aux_channels = c_p
        self.aux_head = AuxiliaryHead(aux_channels, num_classes) if auxiliary else None
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (logits, auxiliary logits or None)."""
        aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux = self.aux_head(s1)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1)), aux
