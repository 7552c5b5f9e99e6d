"""The race's leaderboard: one row per trial, from Tune's results, and its winner."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from raynas.errors import RaynasError
from raynas.race.candidates import Candidate
from raynas.race.trial import HYPERPARAMETERS

FINISHED, STOPPED, DIVERGED, FAILED = "finished", "stopped early", "diverged", "failed"


@dataclass
class Row:
    trial: str
    source: str
    strategy: str
    distance: float | None
    hyperparameters: dict[str, float]
    epochs: int  # epochs run
    status: str  # finished | stopped early | diverged | failed
    final_val_acc: float | None
    best_val_acc: float | None
    time_s: float
    curve: list[float] = field(default_factory=list)  # val accuracy per epoch
    entropy: list[float] = field(default_factory=list)  # alpha entropy per epoch
    error: str | None = None
    checkpoint: Any = field(default=None, repr=False)  # tune.Checkpoint of the last epoch
    path: str | None = None  # the trial's folder in the Tune experiment
    bad_input: bool = False  # it failed on a RaynasError: fixing the input and resuming runs it again

    @property
    def stopped_early(self) -> bool:
        return self.status == STOPPED

    def to_json(self) -> dict[str, Any]:
        return {"rank": None, "trial": self.trial, "source": self.source, "strategy": self.strategy,
                "distance": self.distance, "hyperparameters": self.hyperparameters, "epochs": self.epochs,
                "status": self.status, "stopped_early": self.stopped_early, "final_val_acc": self.final_val_acc,
                "best_val_acc": self.best_val_acc, "time_s": round(self.time_s, 2), "val_acc_curve": self.curve,
                "alpha_entropy_curve": self.entropy, "error": self.error, "path": self.path}


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def build_rows(results, candidates: dict[str, Candidate], epochs: int) -> list[Row]:
    """Rows from a Tune ``ResultGrid``, best first: finished trials by final val accuracy (then
    best), then those stopped early, diverged or failed."""
    rows = []
    for r in results:
        cfg, metrics = r.config or {}, r.metrics or {}
        frame = r.metrics_dataframe
        curve = _finite(frame["val_acc"]) if frame is not None and "val_acc" in frame else []
        entropy = _finite(frame["alpha_entropy"]) if frame is not None and "alpha_entropy" in frame else []
        done = int(metrics.get("epoch") or len(curve))
        error = first_line(r.error) if r.error is not None else metrics.get("error")
        if error:
            status = FAILED
        elif metrics.get("diverged"):
            status = DIVERGED
        elif done < epochs:
            status = STOPPED
        else:
            status = FINISHED
        source = cfg.get("source", "?")
        cand = candidates.get(source, Candidate(source, "hyperopt"))
        rows.append(Row(
            trial=str(metrics.get("trial_id") or (r.path or "?").rsplit("/", 1)[-1]), source=source,
            strategy=cand.strategy, distance=cand.distance,
            hyperparameters={k: cfg[k] for k in HYPERPARAMETERS if cfg.get(k) is not None},
            epochs=done, status=status, final_val_acc=curve[-1] if curve else None,
            best_val_acc=max(curve) if curve else None, time_s=float(metrics.get("time_total_s") or 0.0),
            curve=curve, entropy=entropy, error=error or None,
            checkpoint=r.checkpoint, path=r.path, bad_input=is_input_error(r.error)))
    order = {FINISHED: 0, STOPPED: 1, DIVERGED: 2, FAILED: 3}
    rows.sort(key=lambda row: (order[row.status], -(row.final_val_acc or 0.0), -(row.best_val_acc or 0.0),
                               row.trial))
    return rows


def winner(rows: list[Row]) -> Row:
    """The best trial that ran all its epochs (rows come best first)."""
    for row in rows:
        if row.status == FINISHED and row.checkpoint is not None:
            return row
    failed = [r for r in rows if r.status == FAILED]
    summary = ", ".join(f"{r.source}: {r.status}" for r in rows)
    if failed:  # the first failure's own message says what to do
        raise RaynasError(f"no trial of the race finished its epochs ({summary}); {failed[0].source} failed: "
                          f"{failed[0].error}")
    raise RaynasError(f"no trial of the race finished its epochs ({summary})",
                      "lower the learning rates (--w-lr, --arch-lr) if trials diverged; resume an interrupted race "
                      "with `raynas search --resume RUN`")


def is_input_error(error: BaseException | None) -> bool:
    return error is not None and (isinstance(error, RaynasError) or isinstance(getattr(error, "cause", None),
                                                                              RaynasError))


def first_line(error: BaseException) -> str:
    """What went wrong in a trial: a RaynasError with its fix, else the exception's last line."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, RaynasError) or isinstance(error, RaynasError):
        return str(cause if isinstance(cause, RaynasError) else error)
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(error).__name__
