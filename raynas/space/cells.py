"""Cell topology shared by every implementation: which edge connects which nodes."""

from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=None)
def edge_index(nodes: int) -> tuple[tuple[int, int], ...]:
    """Edges in DARTS order as (source, target): target node i takes sources 0..i+1.

    Sources 0 and 1 are the cell inputs; source j >= 2 is intermediate node j - 2.
    """
    return tuple((j, i) for i in range(nodes) for j in range(i + 2))


@lru_cache(maxsize=None)
def edges_from(nodes: int, source: int) -> tuple[int, ...]:
    """Indices of the edges leaving one source, in target order."""
    return tuple(e for e, (j, _) in enumerate(edge_index(nodes)) if j == source)


def edge_scales(betas: torch.Tensor, nodes: int) -> torch.Tensor:
    """PC-DARTS edge normalisation: softmax of the betas over each node's incoming edges."""
    parts, start = [], 0
    for i in range(nodes):
        parts.append(torch.softmax(betas[start:start + i + 2], dim=-1))
        start += i + 2
    return torch.cat(parts)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave channel groups (dim -3), as PC-DARTS does after a partial-channel edge."""
    *lead, c, h, w = x.shape
    return x.view(*lead, groups, c // groups, h, w).transpose(-4, -3).reshape(*lead, c, h, w)
