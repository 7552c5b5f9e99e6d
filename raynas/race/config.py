"""How a search races its candidate warm starts as Ray Tune trials (``raynas search`` options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raynas.config import check_fields, from_json, option, to_json


@dataclass(frozen=True)
class RaceConfig:
    race: int = option(3, low=1, high=64, help="race the K zoo sources nearest by OT distance (--transfer auto)")
    multi: bool = option(True, help="also race the newest multi-dataset supernet that never saw the target")
    baseline: bool = option(False, help="also race a search from scratch")
    trials: int | None = option(None, low=1, high=10_000,
                                help="trials in all; beyond one per candidate, HyperOpt samples the source and "
                                     "the search hyperparameters")
    early_stop: bool = option(True, help="ASHA stops trials whose val accuracy trails after an epoch rung")
    grace_epochs: int = option(1, low=1, help="ASHA: epochs every trial runs before it can be stopped")
    reduction_factor: int = option(2, low=2, high=16, help="ASHA: 1 in N trials goes on at each rung")
    cpus_per_trial: float | None = option(None, above=0, high=1024,
                                          help="CPUs per trial (default: 1 on CPU-only clusters, 2 with GPUs)")
    gpus_per_trial: float | None = option(None, low=0, high=64, help="GPUs per trial, fractions allowed "
                                                                     "(default: 1 when the cluster has GPUs)")
    node_wait_s: float = option(600.0, low=0, high=86_400, flag="--node-wait-s",
                                help="when no node fits a trial yet and the autoscaler does not say whether one "
                                     "can join: seconds to wait for one before giving up")
    max_concurrent: int | None = option(None, low=1, high=10_000, help="trials running at once (default: as "
                                                                       "many as the resources allow)")
    max_failures: int = option(2, low=0, high=100, help="retries of a crashed trial from its last checkpoint")

    def __post_init__(self):
        check_fields(self)

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RaceConfig":
        return from_json(cls, d, "race config")
