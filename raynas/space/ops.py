"""The candidate operations of the DARTS CNN cell space, as plain per-edge modules.

These are the textbook definitions (Liu et al., 2019). The discrete network built from a
genotype uses them directly (affine BatchNorm with running statistics); the reference
supernet uses them with ``affine=False`` and batch statistics. The fused supernet in
:mod:`raynas.space.fused` computes the same functions with weights stacked over edges.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from raynas.registry import Registry

OpBuilder = Callable[[int, int, bool, bool], nn.Module]  # (channels, stride, affine, track_stats)
OPS: Registry[OpBuilder] = Registry("operation")

DARTS_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
             "dil_conv_3x3", "dil_conv_5x5")


def bn(c: int, affine: bool, track: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, affine=affine, track_running_stats=track)


class Zero(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True,
                 track: bool = True):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                         bn(c_out, affine, track))


class DilConv(nn.Sequential):
    """ReLU, depthwise (dilated) k x k conv, pointwise conv, BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True, track: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            bn(c_out, affine, track))


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable blocks; only the first one strides."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True,
                 track: bool = True):
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, affine, track),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, affine, track))


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convs (so no pixel is dropped).

    Each is computed as a 1x1 conv of every second pixel, the same function: torch 2.14's CPU
    backward of a 1x1 stride-2 conv on channels-last input corrupts the heap on one thread.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = bn(c_out, affine, track)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x[:, :, ::2, ::2]), self.conv_2(x[:, :, 1::2, 1::2])], dim=1))


class PoolBN(nn.Sequential):
    """A 3x3 pool followed by BN: in the search network BN rescales the parameter-free op."""

    def __init__(self, kind: str, c: int, stride: int, affine: bool, track: bool, with_bn: bool):
        pool = (nn.MaxPool2d(3, stride, padding=1) if kind == "max"
                else nn.AvgPool2d(3, stride, padding=1, count_include_pad=False))
        super().__init__(pool, *([bn(c, affine, track)] if with_bn else []))


OPS.add("none", lambda c, stride, affine, track: Zero(stride))
# Pools get a BN only in the search network (affine=False), as in DARTS' MixedOp.
OPS.add("max_pool_3x3", lambda c, stride, affine, track: PoolBN("max", c, stride, False, track, not affine))
OPS.add("avg_pool_3x3", lambda c, stride, affine, track: PoolBN("avg", c, stride, False, track, not affine))
OPS.add("skip_connect", lambda c, stride, affine, track:
        nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine, track))
OPS.add("sep_conv_3x3", lambda c, stride, affine, track: SepConv(c, c, 3, stride, 1, affine, track))
OPS.add("sep_conv_5x5", lambda c, stride, affine, track: SepConv(c, c, 5, stride, 2, affine, track))
OPS.add("dil_conv_3x3", lambda c, stride, affine, track: DilConv(c, c, 3, stride, 2, 2, affine, track))
OPS.add("dil_conv_5x5", lambda c, stride, affine, track: DilConv(c, c, 5, stride, 4, 2, affine, track))


def create_op(name: str, channels: int, stride: int, affine: bool = True, track: bool = True) -> nn.Module:
    return OPS.get(name)(channels, stride, affine, track)
