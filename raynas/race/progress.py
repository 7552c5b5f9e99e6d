"""Live progress of a race on the console: a line per trial event, from the Tune driver."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback


class RaceProgress(Callback):
    """Prints when trials start, finish an epoch, are stopped by ASHA, fail and are retried; a
    failure says why (a bad input fails its trial with the RaynasError's problem and fix).
    ``compare`` marks the trial that leads (a race; a zoo build's sources are not comparable);
    ``finished`` is what a trial that ran all its epochs did."""

    def __init__(self, epochs: int, labels: dict[str, str], sampled: bool = False, out: TextIO | None = None,
                 compare: bool = True, finished: str = "finished"):
        self.epochs, self.labels, self.sampled, self.out = epochs, labels, sampled, out
        self.compare, self.finished = compare, finished
        self.start = time.perf_counter()
        self.best: float | None = None

    def _say(self, trial, message: str) -> None:
        elapsed = time.perf_counter() - self.start
        print(f"[{elapsed:6.0f} s] {trial.trial_id[-5:]} {self._label(trial):<28} {message}",
              file=self.out or sys.stderr, flush=True)

    def _label(self, trial) -> str:
        source = trial.config.get("source", "?")
        return self.labels.get(source, source)

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        hp = ", ".join(f"{k} {v:.3g}" for k, v in sorted(trial.config.items())
                       if k != "source" and isinstance(v, float)) if self.sampled else ""
        self._say(trial, f"started{f' ({hp})' if hp else ''}")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        acc = result.get("val_acc")
        if acc is None or acc != acc:  # a diverged epoch reports NaN: it leads nothing
            if result.get("diverged"):
                self._say(trial, f"epoch {result.get('epoch', '?'):>3}/{self.epochs}  DIVERGED (loss not finite)")
            return
        lead = ""
        if self.compare and (self.best is None or acc > self.best):
            self.best, lead = acc, "  (leads)"
        diverged = "  DIVERGED" if result.get("diverged") else ""
        self._say(trial, f"epoch {result.get('epoch', '?'):>3}/{self.epochs}  val {100 * acc:5.1f}%  "
                         f"H(alpha) {result.get('alpha_entropy', float('nan')):.3f}  skips "
                         f"{result.get('skip_count', '?')}  {result.get('epoch_s', 0):.1f} s{lead}{diverged}")

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        done = (trial.last_result or {}).get("epoch", 0)
        if (trial.last_result or {}).get("diverged"):
            self._say(trial, f"diverged at epoch {done}")
        elif done < self.epochs:
            self._say(trial, f"stopped early by ASHA after epoch {done}")
        else:
            self._say(trial, self.finished)

    def on_trial_recover(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._say(trial, f"crashed ({trial_error(trial)}); retried from its last checkpoint "
                         f"({trial.num_failures} failure(s) so far)")

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._say(trial, f"FAILED: {trial_error(trial)}")


_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Interrupt))(?: \(.*?\))?: (.+)$")


def trial_error(trial) -> str:
    """The last error of a trial in one line, read from the text file Tune writes for it (never
    from its pickle): the exception's message and, for a RaynasError, its fix."""
    try:
        text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace") if trial.error_file else ""
    except OSError:
        text = ""
    lines = text.rsplit("Failure # ", 1)[-1].splitlines()
    for i in range(len(lines) - 1, -1, -1):
        match = _ERROR_LINE.match(lines[i].strip())
        if match:
            fix = [ln.strip() for ln in lines[i + 1:i + 2] if ln.strip().startswith("fix:")]
            return " ".join([match.group(2), *fix])[:300]
    return "see the trial's error.txt"
