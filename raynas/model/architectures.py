"""The networks a model file can hold, one builder per kind: config dict -> module returning logits.

``discrete``: a retrained genotype (what ``raynas retrain`` trains). ``supernet``: a zoo
supernet used as it was trained (every edge the softmax-of-alphas mixture of its ops), with
the head of one of its datasets and, once calibrated, fixed BatchNorm statistics
(:mod:`raynas.space.calibration`).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

from raynas.errors import RaynasError
from raynas.registry import Registry

ARCHITECTURES: Registry[Callable[[dict[str, Any]], nn.Module]] = Registry("model architecture")
"""Each builder returns the bare network, whose ``state_dict`` is what the model file stores."""


class Logits(nn.Module):
    """The network in inference form: images in, logits out (no auxiliary head)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        return out[0] if isinstance(out, tuple) else out


@ARCHITECTURES.register("discrete")
def build_discrete(config: dict[str, Any]) -> nn.Module:
    from raynas.space.genotype import Genotype
    from raynas.space.network import DiscreteNetwork

    try:
        return DiscreteNetwork(Genotype.from_json(config["genotype"]), int(config["in_channels"]),
                               int(config["num_classes"]), int(config["channels"]), int(config["cells"]),
                               bool(config.get("auxiliary", False)))
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad_config("discrete", exc) from None


@ARCHITECTURES.register("supernet")
def build_supernet(config: dict[str, Any]) -> nn.Module:
    from raynas.space.calibration import CalibratedSupernet
    from raynas.space.config import SpaceConfig
    from raynas.space.multihead import create_multihead_supernet
    from raynas.space.supernet import create_supernet

    try:
        space = SpaceConfig.from_json(config["space"])
        if config.get("class_counts") is None:
            network = create_supernet(space)
        else:
            network = create_multihead_supernet(space, [int(k) for k in config["class_counts"]])
            network.select(int(config["head"]))  # a multi-dataset supernet, fixed to one dataset's head
        if config.get("calibration") is None:
            return network
        return CalibratedSupernet(network, [int(c) for c in config["calibration"]["channels"]])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _bad_config("supernet", exc) from None


def build_network(kind: str, config: dict[str, Any]) -> nn.Module:
    """The bare network of a model file (load its weights into this one)."""
    return ARCHITECTURES.get(kind)(config)


def _bad_config(kind: str, exc: Exception) -> RaynasError:
    return RaynasError(f"the model's {kind} network config is incomplete or wrong: {exc!r}",
                       "the model file is damaged or from another version of raynas; write it again")
