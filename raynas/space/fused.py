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
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from raynas.registry import Registry
from raynas.space.cells import channel_shuffle, edge_index, edges_from


BATCH_STATISTICS: ContextVar["Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None"] = ContextVar(
    "raynas_batch_statistics", default=None)
"""Set only while a calibrated supernet runs (:mod:`raynas.space.calibration`): it normalises
each ``_bn`` call with fixed statistics instead of the batch's own."""


def _bn(x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Affine-free BatchNorm with batch statistics: one call for all stacked edges.

    ``scale`` (E,) multiplies each edge's output; folding the op's mixing weight into BN's
    affine slot saves a full pass over the activations (forward and backward).
    """
    weight = None if scale is None else scale.repeat_interleave(x.shape[1] // scale.shape[0])
    fixed = BATCH_STATISTICS.get()
    if fixed is not None:
        return fixed(x, weight)
    return F.batch_norm(x, None, None, weight=weight, training=True, eps=1e-5)


def _depthwise(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """E depthwise kernels (E, C, 1, k, k) on one shared input (B, C, H, W) -> (B, C*E, H', W').

    One conv with a channel multiplier of E, so the input is never copied; channel c*E + e.
    """
    e, c, _, k, _ = w.shape
    return F.conv2d(x, w.transpose(0, 1).reshape(c * e, 1, k, k), stride=stride, padding=padding,
                    dilation=dilation, groups=c)


def _depthwise_stacked(y: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """E depthwise kernels on E stacked inputs (B, E*C, H, W), channel e*C + c."""
    e, c, _, k, _ = w.shape
    return F.conv2d(y, w.reshape(e * c, 1, k, k), padding=padding, groups=e * c)


def _pointwise(y: torch.Tensor, w: torch.Tensor, interleaved: bool) -> torch.Tensor:
    """E independent 1x1 convs (E, Cout, Cin, 1, 1) as ONE dense 1x1 conv with a block-diagonal weight.

    Output channel e*Cout + o. With ``interleaved`` the input channels are ordered c*E + e (the
    output of :func:`_depthwise`) and the weight's columns are permuted to match, so no
    activation is ever transposed. The zero blocks cost FLOPs but a dense 1x1 conv is a single
    GEMM, several times faster on CPU than a grouped conv or a batched matmul with copies.
    """
    e, co, ci, _, _ = w.shape
    full = torch.block_diag(*w[..., 0, 0].unbind(0))  # (E*Cout, E*Cin), columns e*Cin + c
    if interleaved:
        full = full.view(e * co, e, ci).transpose(1, 2).reshape(e * co, ci * e)
    return F.conv2d(y, full[:, :, None, None])


def sep_conv(r: torch.Tensor, p: dict[str, torch.Tensor], stride: int, kernel: int,
             scale: torch.Tensor) -> torch.Tensor:
    pad = kernel // 2
    y = _bn(_pointwise(_depthwise(r, p["dw1"], stride, pad, 1), p["pw1"], interleaved=True))
    return _bn(_pointwise(_depthwise_stacked(F.relu(y), p["dw2"], pad), p["pw2"], interleaved=False), scale)


def dil_conv(r: torch.Tensor, p: dict[str, torch.Tensor], stride: int, kernel: int,
             scale: torch.Tensor) -> torch.Tensor:
    """A stride-2 dilation-2 conv touches only the even pixels, so it is computed as an undilated
    stride-1 conv of them: the same numbers, while oneDNN's backward of the strided dilated
    depthwise conv falls back to a slow generic path (the slowest convs of reduction cells)."""
    if stride == 2:
        even = r[:, :, ::2, ::2]
        nhwc = r.is_contiguous(memory_format=torch.channels_last) and not r.is_contiguous()
        even = even.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
        y = _depthwise(even, p["dw"], 1, (kernel - 1) // 2, 1)
    else:
        y = _depthwise(r, p["dw"], stride, kernel - 1, 2)
    return _bn(_pointwise(y, p["pw"], interleaved=True), scale)


def factorized_reduce(r: torch.Tensor, p: dict[str, torch.Tensor], stride: int, kernel: int,
                      scale: torch.Tensor) -> torch.Tensor:
    """Per edge: two offset 1x1 stride-2 convs, concatenated; stacked over edges as dense convs.

    A 1x1 stride-2 conv is a 1x1 conv of every second pixel, and is computed so: torch 2.14's
    CPU backward of a 1x1 stride-2 conv on channels-last input corrupts the heap when it runs
    on one thread (a Tune trial with one CPU), which crashed PC-DARTS searches.
    """
    e, half, c, _, _ = p["conv_1"].shape
    y1 = F.conv2d(r[:, :, ::2, ::2], p["conv_1"].reshape(e * half, c, 1, 1))
    y2 = F.conv2d(r[:, :, 1::2, 1::2], p["conv_2"].reshape(e * half, c, 1, 1))
    b, _, h, w = y1.shape
    y = torch.cat([y1.view(b, e, half, h, w), y2.view(b, e, half, h, w)], dim=2).view(b, e * 2 * half, h, w)
    nhwc = r.is_contiguous(memory_format=torch.channels_last) and not r.is_contiguous()
    return _bn(y.contiguous(memory_format=torch.channels_last) if nhwc else y, scale)


@dataclass(frozen=True)
class FusedOp:
    """A conv op evaluated for all out-edges of a source at once.

    ``params`` maps each stacked parameter to (shape of one edge's tensor given C, path of
    that tensor inside the reference op module).
    """

    forward: Callable[[torch.Tensor, dict[str, torch.Tensor], int, int, torch.Tensor], torch.Tensor]
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
        return _bn(F.max_pool2d(x, 3, stride, padding=1))
    if name == "avg_pool_3x3":
        return _bn(F.avg_pool2d(x, 3, stride, padding=1, count_include_pad=False))
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
            y = shared_op(name, part, self.stride)
            if y is not None:  # the same tensor for every edge, broadcast over E
                w = weights[:, k].view(1, -1, 1, 1, 1)
                y = y.unsqueeze(1)
                out = y * w if out is None else out.addcmul_(y, w)
                continue
            op = conv_op(name, self.stride)
            if op is None:  # 'none' adds nothing
                continue
            y = op.forward(relu, dict(self.params[name].items()), self.stride, op.kernel, weights[:, k])
            b, _, h, wd = y.shape
            y = y.view(b, self.num_edges, -1, h, wd)  # a view in any memory format; already weighted
            out = y if out is None else out.add_(y)
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
            # unbind, not outs[:, n]: its backward stacks E gradients instead of zero-filling E full-size tensors
            for e, out in zip(edges, outs.unbind(1)):
                t = self.targets[e]
                acc[t] = out if acc[t] is None else acc[t] + out
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
