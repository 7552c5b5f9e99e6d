"""Live progress of the benchmark's arm trials on the console, from the Tune driver."""

from __future__ import annotations

from typing import Any, Callable

from ray.tune import Callback

from raynas.race.progress import trial_error


class BenchProgress(Callback):
    """A line when an arm's trial starts, per epoch, and when it ends (with its retrained accuracy)."""

    def __init__(self, epochs: Callable[[str], int], say: Callable[[str], None]):
        self.epochs, self.say = epochs, say  # epochs: an arm's budget from its start ("scratch" or a source)

    @staticmethod
    def _label(trial) -> str:
        p = trial.config.get("pick", {})
        source = f" from {p['source']}" if p.get("source") not in (None, "scratch") else ""
        return f"{p.get('target')}/{p.get('arm')}/seed{p.get('seed')}{source}"

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.say(f"{self._label(trial)}: started")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        if "retrain_test_acc" in result:
            self.say(f"{self._label(trial)}: retrained, test {100 * result['retrain_test_acc']:.1f}%")
        elif result.get("val_acc") is not None:
            total = self.epochs(trial.config.get("pick", {}).get("source", "scratch"))
            self.say(f"{self._label(trial)}: epoch {result.get('epoch')}/{total} val "
                     f"{100 * result['val_acc']:.1f}% H(alpha) {result.get('alpha_entropy', float('nan')):.3f}")

    def on_trial_recover(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.say(f"{self._label(trial)}: crashed ({trial_error(trial)}); retried from its last checkpoint "
                 f"({trial.num_failures} failure(s) so far)")

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.say(f"{self._label(trial)}: FAILED ({trial_error(trial)}); no retries left")
