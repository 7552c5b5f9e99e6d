"""The configuration of one search run; written in full into every run directory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from raynas.errors import RaynasError


@dataclass(frozen=True)
class SearchConfig:
    dataset: str
    algo: str = "darts"
    preset: str = "cpu"
    epochs: int = 10
    warmup_epochs: int | None = None  # epochs without alpha updates; None = the algorithm's default
    seed: int = 0
    # warm start (raynas.transfer): where the supernet's initial weights and alphas come from
    transfer: str = "scratch"  # scratch | auto | ot | multi | random | a zoo entry's name
    transfer_mode: str = "weights+alphas"  # weights+alphas | weights | alphas
    alpha_temperature: float = 1.0  # > 1 softens transferred alphas towards uniform
    distance: str = "cascade"  # OT method that ranks zoo sources for --transfer ot
    encoder: str = "pixels"  # feature encoder of the OT embeddings
    # multi-dataset pretraining: one supernet over these datasets (a head each); ``dataset``
    # then names the result instead of a stored dataset
    multi: tuple[str, ...] = ()
    # sizes: None = from the preset
    image_size: int | None = None
    channels: int | None = None
    cells: int | None = None
    nodes: int | None = None
    batch_size: int | None = None
    ops: tuple[str, ...] | None = None
    partial_channels: int | None = None  # PC-DARTS K; None = the algorithm's default
    # weights: SGD with cosine annealing (DARTS defaults)
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # architecture: Adam; None = the algorithm's default learning rate
    a_lr: float | None = None
    a_beta1: float = 0.5
    a_beta2: float = 0.999
    a_weight_decay: float = 1e-3
    reg_scale: float = 1e-3  # DrNAS: weight of the Dirichlet KL regulariser
    augment: bool = True
    max_steps_per_epoch: int | None = None  # cap steps for quick runs
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    loader_backend: str = "auto"
    threads: int | None = None  # torch intra-op threads; None = leave as is

    def __post_init__(self):
        if self.ops is not None:
            object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "multi", tuple(self.multi))
        if len(self.multi) == 1 or len(set(self.multi)) != len(self.multi):
            raise RaynasError(f"multi-dataset pretraining needs at least two distinct datasets, got {list(self.multi)}")
        if self.alpha_temperature <= 0:
            raise RaynasError(f"alpha_temperature must be positive, got {self.alpha_temperature}")
        if self.epochs < 1:
            raise RaynasError(f"epochs must be at least 1, got {self.epochs}")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs <= self.epochs:
            raise RaynasError(f"warmup_epochs must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs}")
        for name in ("image_size", "channels", "cells", "nodes", "batch_size", "partial_channels",
                     "max_steps_per_epoch", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RaynasError(f"{name} must be positive, got {value}")
        if self.w_lr <= 0 or (self.a_lr is not None and self.a_lr <= 0):
            raise RaynasError("learning rates must be positive")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.ops is not None:
            d["ops"] = list(self.ops)
        d["multi"] = list(self.multi)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SearchConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise RaynasError(f"unknown search config field(s): {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "SearchConfig":
        return replace(self, **changes)
