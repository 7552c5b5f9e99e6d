"""The straightforward supernet cell: every edge evaluates every op on its own.

Kept as the ground truth for the fused cell (tests compare outputs and gradients) and
as the baseline of the step-time benchmark; searches use the fused cell.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from raynas.space.cells import channel_shuffle, edge_index
from raynas.space.ops import create_op


class MixedOp(nn.Module):
    """One edge: a weighted sum of all candidate ops (on 1/K of the channels for PC-DARTS)."""

    def __init__(self, ops: tuple[str, ...], channels: int, stride: int, partial: int):
        super().__init__()
        self.partial, self.stride = partial, stride
        self.ops = nn.ModuleList(create_op(name, channels // partial, stride, affine=False, track=False)
                                 for name in ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        if self.partial == 1:
            out = sum(w * op(x) for w, op in zip(weights, self.ops))
        else:
            c = x.shape[1] // self.partial
            part, rest = x[:, :c], x[:, c:]
            mixed = sum(w * op(part) for w, op in zip(weights, self.ops))
            if self.stride == 2:
                rest = F.max_pool2d(rest, 2, 2)
            out = channel_shuffle(torch.cat([mixed, rest], dim=1), self.partial)
        return out if scale is None else scale * out


class ReferenceCell(nn.Module):
    def __init__(self, ops: tuple[str, ...], nodes: int, channels: int, reduction: bool, partial: int):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(MixedOp(ops, channels, 2 if reduction and j < 2 else 1, partial)
                                   for j, _ in edge_index(nodes))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                scales: torch.Tensor | None) -> torch.Tensor:
        states = [s0, s1]
        offset = 0
        for i in range(self.nodes):
            states.append(sum(self.edges[offset + j](h, weights[offset + j], None if scales is None
                                                     else scales[offset + j]) for j, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)
