"""The benchmark's arithmetic: how much sooner an arm reaches what scratch reaches, and summaries
that keep "never reached" apart from every number.

Speed-up of an arm = the epochs (or seconds) scratch needs to first reach its own final val
accuracy, divided by the epochs (or seconds) the arm needs to first reach that same accuracy.
An arm that never gets there has no speed-up (``None``), whatever its curve looks like.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence


def first_reach(values: Sequence[float], goal: float, tolerance: float = 0.0) -> int | None:
    """The 1-based index of the first value at or above ``goal - tolerance``; None if none is."""
    for i, v in enumerate(values, 1):
        if v is not None and math.isfinite(v) and v >= goal - tolerance:
            return i
    return None


@dataclass(frozen=True)
class SpeedUp:
    goal: float  # scratch's final val accuracy
    scratch_epochs: int  # epochs scratch needed to reach it first
    scratch_s: float
    arm_epochs: int | None  # None: the arm never reached the goal
    arm_s: float | None

    @property
    def reached(self) -> bool:
        return self.arm_epochs is not None

    @property
    def epochs(self) -> float | None:
        return None if self.arm_epochs is None else self.scratch_epochs / self.arm_epochs

    @property
    def seconds(self) -> float | None:
        if self.arm_s is None or self.arm_s <= 0:
            return None
        return self.scratch_s / self.arm_s

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "reached": self.reached, "speedup_epochs": self.epochs,
                "speedup_s": self.seconds}


def speed_up(scratch_acc: Sequence[float], scratch_epoch_s: Sequence[float], arm_acc: Sequence[float],
             arm_epoch_s: Sequence[float], tolerance: float = 0.0) -> SpeedUp:
    """Speed-up of one arm over scratch, from their per-epoch val accuracies and epoch times."""
    if not scratch_acc:
        raise ValueError("scratch has no epochs")
    goal = scratch_acc[-1]
    need = first_reach(scratch_acc, goal, tolerance)
    assert need is not None  # its own final value
    got = first_reach(arm_acc, goal, tolerance)
    return SpeedUp(goal=goal, scratch_epochs=need, scratch_s=float(sum(scratch_epoch_s[:need])), arm_epochs=got,
                   arm_s=None if got is None else float(sum(arm_epoch_s[:got])))


def quantile_or_never(values: Sequence[float | None], q: float) -> float | None:
    """The ``q`` quantile (linear between ranks), counting "never reached" (None) below every
    number; None when it falls on (or next to) a never-reached value."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: (v is not None, v if v is not None else 0.0))
    pos = q * (len(ordered) - 1)
    lo, frac = int(math.floor(pos)), pos - math.floor(pos)
    low, high = ordered[lo], ordered[min(lo + 1, len(ordered) - 1)]
    if low is None or (frac > 0 and high is None):
        return None
    return low if frac == 0 else low + frac * (high - low)


def median_or_never(values: Sequence[float | None]) -> float | None:
    """The median, never-reached values counted below every number."""
    return quantile_or_never(values, 0.5)


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and quartiles (never reached ranked below every number, so quartiles and median
    agree), how many never reached, and the range, mean and geometric mean of the numbers (the
    targets never reached are not in those: read them with ``never``)."""
    nums = sorted(v for v in values if v is not None)
    out: dict[str, Any] = {"n": len(values), "never": len(values) - len(nums), "median": median_or_never(values),
                           "q1": quantile_or_never(values, 0.25), "q3": quantile_or_never(values, 0.75)}
    if nums:  # over the targets it reached: the paper reports a mean
        out.update(min=nums[0], max=nums[-1], mean=statistics.fmean(nums),
                   geomean=statistics.geometric_mean(nums) if nums[0] > 0 else None)
    return out


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def spearman(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Spearman's rank correlation with its p-value (None below three pairs or for constant input)."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return {"rho": None, "p": None, "n": len(pairs)}
    from scipy.stats import spearmanr

    rho, p = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
    return {"rho": float(rho), "p": float(p), "n": len(pairs)}


def format_speedup(value: float | None) -> str:
    return "never reached" if value is None else f"{value:.2f}x"
