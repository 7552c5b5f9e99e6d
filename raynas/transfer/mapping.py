"""Mapping a source supernet's tensors onto a target supernet.

Every tensor whose name and shape match is copied; the cell body does not depend on image
size, so it always matches between supernets of one search space. The rest is adapted or
left at its initial value:

* the stem's first convolution when the input channel count differs (gray <-> RGB): a gray
  image enters an RGB network as three equal channels, and an RGB image enters a gray one
  as its luma, so the kernels are summed over channels or spread by the luma weights;
* the classifier when the class count differs, and heads of multi-dataset supernets, which
  the target does not have: the target keeps its freshly initialised head;
* alphas (and PC-DARTS betas) are divided by a temperature, which moves the op weights
  towards uniform for temperatures above 1 and keeps a collapsed source from deciding the
  target's architecture.

Modes copy weights and alphas, weights only, or alphas only (for ablations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from raynas.errors import RaynasError
from raynas.registry import Registry
from raynas.space.config import SpaceConfig
from raynas.space.supernet import ARCH_PREFIXES, Supernet

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
STEM_WEIGHT = "stem.0.weight"


@dataclass(frozen=True)
class TransferMode:
    weights: bool
    alphas: bool


TRANSFER_MODES: Registry[TransferMode] = Registry("transfer mode")
TRANSFER_MODES.add("weights+alphas", TransferMode(weights=True, alphas=True))
TRANSFER_MODES.add("weights", TransferMode(weights=True, alphas=False))
TRANSFER_MODES.add("alphas", TransferMode(weights=False, alphas=True))


@dataclass
class TransferReport:
    """What happened to each tensor of the target."""

    copied: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)  # present in the source with another shape
    kept: list[str] = field(default_factory=list)  # absent from the source, or excluded by the mode
    unused: list[str] = field(default_factory=list)  # source tensors the target has no place for

    def to_json(self) -> dict[str, Any]:
        return {"copied": len(self.copied), "adapted": self.adapted, "reinitialised": self.reinitialised,
                "kept": len(self.kept), "unused": len(self.unused)}


def check_compatible(source: SpaceConfig, target: SpaceConfig, source_name: str = "the source") -> None:
    """The cell bodies must have the same shape; image size, channels in and classes may differ."""
    keys = ("channels", "cells", "nodes", "ops")
    diff = {k: (getattr(source, k), getattr(target, k)) for k in keys if getattr(source, k) != getattr(target, k)}
    if diff:
        detail = ", ".join(f"{k} {s} vs {t}" for k, (s, t) in diff.items())
        raise RaynasError(
            f"{source_name} was built for another search space than this search ({detail})",
            "search with the preset the zoo was built with (see `raynas zoo list`), or rebuild the zoo with "
            "this search's --preset")


def adapt_stem(weight: np.ndarray, in_channels: int) -> np.ndarray:
    """Stem kernels (C_out, C_in, k, k) for another input channel count (1 <-> 3)."""
    c_in = weight.shape[1]
    if c_in == 3 and in_channels == 1:
        return weight.sum(axis=1, keepdims=True)
    if c_in == 1 and in_channels == 3:
        return weight * LUMA[None, :, None, None]
    raise RaynasError(f"cannot adapt a stem from {c_in} to {in_channels} input channels")


def transfer_state(source: Mapping[str, np.ndarray], target: Supernet, mode: str = "weights+alphas",
                   alpha_temperature: float = 1.0) -> TransferReport:
    """Load ``source`` into ``target`` in place, as far as it fits; returns what was done."""
    how = TRANSFER_MODES.get(mode)
    if alpha_temperature <= 0:
        raise RaynasError(f"alpha temperature must be positive, got {alpha_temperature}")
    state = target.state_dict()
    report = TransferReport(unused=sorted(set(source) - set(state)))
    new: dict[str, torch.Tensor] = {}
    for key, current in state.items():
        is_arch = key.startswith(ARCH_PREFIXES)
        if key not in source or not (how.alphas if is_arch else how.weights):
            report.kept.append(key)
            continue
        value = np.asarray(source[key], dtype=np.float32)
        if tuple(value.shape) == tuple(current.shape):
            if is_arch:
                value = value / alpha_temperature
            new[key] = torch.tensor(value)
            report.copied.append(key)
        elif key == STEM_WEIGHT and value.shape[0] == current.shape[0] and value.shape[2:] == tuple(current.shape[2:]):
            new[key] = torch.tensor(adapt_stem(value, current.shape[1]))
            report.adapted.append(key)
        else:
            report.reinitialised.append(key)
    target.load_state_dict({**state, **new})
    return report
