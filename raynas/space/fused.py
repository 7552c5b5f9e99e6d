"""The fused supernet cell: the same function as :mod:`raynas.space.reference`, computed
source by source instead of edge by edge.

All edges that leave one node see the same input. So, per source node:

* parameter-free ops (pools with their affine-free BatchNorm, identity skip) are computed
  once and shared by all of its out-edges;
* the ReLU in front of every conv op is computed once;
* each conv op runs once for all out-edges: the depthwise conv as one conv with a channel
  multiplier (or one grouped conv), the pointwise conv as one grouped conv, with the
  per-edge weights stacked along a leading edge dimension;
* BatchNorm (affine-free, batch statistics) runs once over the stacked channels.

Parameters are stored stacked, ``(edges, ...)``, which is also the layout of checkpoints and
zoo entries; :func:`reference_to_fused` maps a reference state_dict onto it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from raynas.registry import Registry
from raynas.space.cells import channel_shuffle, edge_index, edges_from


def _bn2d(x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, None, None, training=True, eps=1e-5)


def _depthwise(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """E depthwise kernels (E, C, 1, k, k) on one shared input (B, C, H, W) -> (B, C, E, H', W').

    One conv with a channel multiplier of E: the input is never copied E times.
    """
    e, c, _, k, _ = w.shape
    y = F.conv2d(x, w.transpose(0, 1).reshape(c * e, 1, k, k), stride=stride, padding=padding,
                 dilation=dilation, groups=c)
    return y.view(y.shape[0], c, e, *y.shape[2:])


def _depthwise_stacked(y: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """E depthwise kernels on E stacked inputs (B, E, C, H, W) -> (B, E, C, H, W)."""
    e, c, _, k, _ = w.shape
    b, _, _, h, wd = y.shape
    out = F.conv2d(y.reshape(b, e * c, h, wd), w.reshape(e * c, 1, k, k), padding=padding, groups=e * c)
    return out.view(b, e, c, h, wd)


def _pointwise(y: torch.Tensor, w: torch.Tensor, layout: str) -> torch.Tensor:
    """E independent 1x1 convs (E, Cout, Cin, 1, 1) as one batched matmul -> (B, E, Cout, H, W).

    (A grouped 1x1 convolution is several times slower on CPU backends.)
    """
    return torch.einsum(f"eoc,{layout}->beohw", w[..., 0, 0], y)


def _bn(x: torch.Tensor) -> torch.Tensor:
    """Affine-free BatchNorm with batch statistics over (B, E, C, H, W): one call for all edges."""
    b, e, c, h, w = x.shape
    return F.batch_norm(x.reshape(b, e * c, h, w), None, None, training=True, eps=1e-5).view(b, e, c, h, w)


def sep_conv(r: torch.Tensor, p: dict[str, torch.Tensor], stride: int, kernel: int) -> torch.Tensor:
    pad = kernel // 2
    y = _bn(_pointwise(_depthwise(r, p["dw1"], stride, pad, 1), p["pw1"], "bcehw"))
    return _bn(_pointwise(_depthwise_stacked(F.relu(y), p["dw2"], pad), p["pw2"], "bechw"))


def dil_conv(r: torch.Tensor, p: dict[str, torch.Tensor], stride: int, kernel: int) -> torch.Tensor:
    return _bn(_pointwise(_depthwise(r, p["dw"], stride, kernel - 1, 2), p["pw"], "bcehw"))


def factorized_reduce(r: torch.Tensor, p: dict[str, torch.Tensor], stride: int, kernel: int) -> torch.Tensor:
    y1 = torch.einsum("eoc,bchw->beohw", p["conv_1"][..., 0, 0], r[:, :, ::2, ::2])
    y2 = torch.einsum("eoc,bchw->beohw", p["conv_2"][..., 0, 0], r[:, :, 1::2, 1::2])
    return _bn(torch.cat([y1, y2], dim=2))


@dataclass(frozen=True)
class FusedOp:
    """A conv op evaluated for all out-edges of a source at once.

    ``params`` maps each stacked parameter to (shape of one edge's tensor given C, path of
    that tensor inside the reference op module).
    """

    forward: Callable[[torch.Tensor, dict[str, torch.Tensor], int, int], torch.Tensor]
    kernel: int
    params: Callable[[int], dict[str, tuple[tuple[int, ...], str]]]


def _sep_params(k: int):
    return lambda c: {"dw1": ((c, 1, k, k), "0.1.weight"), "pw1": ((c, c, 1, 1), "0.2.weight"),
                      "dw2": ((c, 1, k, k), "1.1.weight"), "pw2": ((c, c, 1, 1), "1.2.weight")}


def _dil_params(k: int):
    return lambda c: {"dw": ((c, 1, k, k), "1.weight"), "pw": ((c, c, 1, 1), "2.weight")}


FUSED_OPS: Registry[FusedOp] = Registry("fused operation")
FUSED_OPS.add("sep_conv_3x3", FusedOp(sep_conv, 3, _sep_params(3)))
FUSED_OPS.add("sep_conv_5x5", FusedOp(sep_conv, 5, _sep_params(5)))
FUSED_OPS.add("dil_conv_3x3", FusedOp(dil_conv, 3, _dil_params(3)))
FUSED_OPS.add("dil_conv_5x5", FusedOp(dil_conv, 5, _dil_params(5)))
FACTORIZED_REDUCE = FusedOp(factorized_reduce, 1, lambda c: {
    "conv_1": ((c // 2, c, 1, 1), "conv_1.weight"), "conv_2": ((c // 2, c, 1, 1), "conv_2.weight")})


def shared_op(name: str, x: torch.Tensor, stride: int) -> torch.Tensor | None:
    """Parameter-free ops: identical for every edge that leaves the same source."""
    if name == "max_pool_3x3":
        return _bn2d(F.max_pool2d(x, 3, stride, padding=1))
    if name == "avg_pool_3x3":
        return _bn2d(F.avg_pool2d(x, 3, stride, padding=1, count_include_pad=False))
    if name == "skip_connect" and stride == 1:
        return x
    return None


def conv_op(name: str, stride: int) -> FusedOp | None:
    if name == "skip_connect" and stride == 2:
        return FACTORIZED_REDUCE
    return FUSED_OPS.get(name) if name in FUSED_OPS else None


class SourceOps(nn.Module):
    """Every candidate op on every edge leaving one source node, weights stacked by edge."""

    def __init__(self, ops: tuple[str, ...], channels: int, num_edges: int, stride: int, partial: int):
        super().__init__()
        self.ops, self.stride, self.partial, self.num_edges = ops, stride, partial, num_edges
        self.channels = c = channels // partial
        self.params = nn.ModuleDict()
        for name in ops:
            op = conv_op(name, stride)
            if op is None:
                continue
            stacked = nn.ParameterDict()
            for pname, (shape, _) in op.params(c).items():
                w = torch.empty(num_edges, *shape)
                for e in range(num_edges):  # the default init of nn.Conv2d, edge by edge
                    nn.init.kaiming_uniform_(w[e], a=math.sqrt(5))
                stacked[pname] = nn.Parameter(w)
            self.params[name] = stacked

    def forward(self, x: torch.Tensor, weights: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, H, W), weights (E, n_ops), scales (E,) or None -> edge outputs (B, E, C, H', W')."""
        if scales is not None:
            weights = weights * scales[:, None]
        part = x if self.partial == 1 else x[:, :x.shape[1] // self.partial]
        relu = F.relu(part)
        out = None
        for k, name in enumerate(self.ops):
            w = weights[:, k].view(1, -1, 1, 1, 1)
            y = shared_op(name, part, self.stride)
            if y is not None:
                y = y.unsqueeze(1)  # the same tensor for every edge, broadcast over E
            else:
                op = conv_op(name, self.stride)
                if op is None:  # 'none' adds nothing
                    continue
                y = op.forward(relu, dict(self.params[name].items()), self.stride, op.kernel)
            out = y * w if out is None else out.addcmul_(y, w)
        if out is None:  # only 'none' ops: every edge outputs zeros
            sub = part[:, :, ::self.stride, ::self.stride]
            out = sub.new_zeros(sub.shape[0], self.num_edges, *sub.shape[1:])
        if self.partial == 1:
            return out
        rest = x[:, x.shape[1] // self.partial:]
        if self.stride == 2:
            rest = F.max_pool2d(rest, 2, 2)
        rest = rest.unsqueeze(1).expand(-1, self.num_edges, -1, -1, -1)
        if scales is not None:
            rest = rest * scales.view(1, -1, 1, 1, 1)
        return channel_shuffle(torch.cat([out, rest], dim=2), self.partial)


class FusedCell(nn.Module):
    def __init__(self, ops: tuple[str, ...], nodes: int, channels: int, reduction: bool, partial: int):
        super().__init__()
        self.nodes = nodes
        self.targets = [t for _, t in edge_index(nodes)]
        self.sources = nn.ModuleList(
            SourceOps(ops, channels, len(edges_from(nodes, j)), 2 if reduction and j < 2 else 1, partial)
            for j in range(nodes + 1))  # the last node feeds no edge inside the cell

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                scales: torch.Tensor | None) -> torch.Tensor:
        states = [s0, s1]
        acc: list[torch.Tensor | None] = [None] * self.nodes
        for j, source in enumerate(self.sources):
            if j >= 2:
                states.append(acc[j - 2])  # all inputs of node j-2 have arrived
            edges = list(edges_from(self.nodes, j))
            outs = source(states[j], weights[edges], None if scales is None else scales[edges])
            for n, e in enumerate(edges):
                t = self.targets[e]
                acc[t] = outs[:, n] if acc[t] is None else acc[t] + outs[:, n]
        states.append(acc[-1])
        return torch.cat(states[2:], dim=1)


def reference_to_fused(ref_state: dict[str, torch.Tensor], cells: nn.ModuleList) -> dict[str, torch.Tensor]:
    """Map a supernet state_dict with reference cells onto the layout of fused cells."""
    out = {k: v for k, v in ref_state.items() if ".body." not in k}
    for i, cell in enumerate(cells):
        body = cell.body
        for j, source in enumerate(body.sources):
            edges = edges_from(body.nodes, j)
            for name in source.params:
                k = source.ops.index(name)
                op = conv_op(name, source.stride)
                for pname, (_, path) in op.params(source.channels).items():
                    out[f"cells.{i}.body.sources.{j}.params.{name}.{pname}"] = torch.stack(
                        [ref_state[f"cells.{i}.body.edges.{e}.ops.{k}.{path}"] for e in edges])
    return out
