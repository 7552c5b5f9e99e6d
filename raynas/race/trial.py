"""The Tune trial of a race (one warm-started search) and of a zoo build (one source's search
from scratch, published at its end), reported and checkpointed every epoch.

A trial only parses its config and calls :func:`raynas.experiment.run_experiment`. What it
receives are names and numbers: the experiment config, the home and storage to reopen the
workspace from, the candidate's zoo entry name and hyperparameters. It reads its data from
the (shared) home and its source weights from the zoo actor, never through the driver.

Each epoch it reports the metrics with a ``tune.Checkpoint`` of the search state, which
carries the config and the warm-start record, so a trial that Tune restarts after a crash
(``FailureConfig``), or restores on another node, resumes where it was and still knows what
it was warm-started from. It also writes the alpha heatmaps and the derived cells as
TensorBoard images next to Tune's scalars.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from raynas.errors import RaynasError
from raynas.experiment import ExperimentConfig, SearchDiverged, run_experiment
from raynas.race.candidates import SCRATCH
from raynas.search.loop import Callback, SearchState
from raynas.workspace import Workspace

# metrics every epoch reports to Tune (and so to TensorBoard and the leaderboard)
REPORTED = ("epoch", "val_acc", "val_loss", "train_acc", "train_loss", "alpha_entropy", "skip_count", "epoch_s",
            "search_step_s")
HYPERPARAMETERS = ("w_lr", "a_lr", "w_weight_decay", "alpha_temperature")  # what HyperOpt may change
NAN = float("nan")


@dataclass(frozen=True)
class TrialJob:
    """What every trial of one race (or zoo build) shares, as plain values."""

    experiment: dict[str, Any] | None  # ExperimentConfig.to_json() of the race (None: a zoo build)
    home: str
    storage: str | None
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate key -> facts for its warm start
    tensorboard: bool = True
    callbacks: Sequence[Callback] = field(default=())  # extra per-epoch callbacks (tests, integrations)
    datasets: dict[str, str] = field(default_factory=dict)  # name -> content hash when the race started
    pretrain: dict[str, dict[str, Any]] = field(default_factory=dict)  # zoo build: source -> its experiment


def trial_experiment(job: TrialJob, trial_config: dict[str, Any]) -> ExperimentConfig:
    """The experiment one trial runs. In a race: the race's search with this trial's source and
    hyperparameters, no retrain or publish (the race does those for its winner). In a zoo build:
    the source's own search from scratch, which the trial publishes when it ends."""
    source = trial_config["source"]
    if job.pretrain:
        return ExperimentConfig.from_json(job.pretrain[source])
    base = ExperimentConfig.from_json(job.experiment)
    changes = {k: trial_config[k] for k in HYPERPARAMETERS if trial_config.get(k) is not None}
    search = base.search.replace(transfer="scratch" if source == SCRATCH else source, **changes)
    return replace(base, search=search, retrain=None, publish=False)


class TuneReport:
    """Reports an epoch's metrics to Tune with the checkpoint just written."""

    def __init__(self, checkpoint_dir: Path):
        self.checkpoint_dir = checkpoint_dir

    def on_epoch_end(self, metrics: dict[str, Any], state: SearchState) -> None:
        from ray import tune

        tune.report(tune_metrics(metrics), checkpoint=tune.Checkpoint.from_directory(str(self.checkpoint_dir)))


def tune_metrics(metrics: dict[str, Any], diverged: bool = False) -> dict[str, Any]:
    out = {k: metrics[k] for k in REPORTED if k in metrics}
    out.update(genotype=metrics.get("genotype", ""), diverged=int(diverged))
    return out


class TensorBoardImages:
    """The op weights of both cells as a TensorBoard image every epoch, and the derived cells
    drawn when they change: at the first epoch, the last, and in between at most every
    ``draw_every_s`` seconds (a drawing takes a matplotlib figure, a quarter second: with short
    epochs, early on the cells change every epoch and the drawings alone took 1-2% of a trial)."""

    def __init__(self, logdir: str | Path, draw_every_s: float = 30.0):
        self.logdir, self.writer, self.drawn = Path(logdir), None, None
        self.draw_every_s, self.drawn_at = draw_every_s, -math.inf

    def on_epoch_end(self, metrics: dict[str, Any], state: SearchState) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from raynas.space.genotype import alpha_image, draw_genotype

        if self.writer is None:
            self.writer = SummaryWriter(str(self.logdir))
        step = int(metrics["epoch"])
        self.writer.add_image("alphas", alpha_image(state.model), global_step=step)
        genotype, now = state.genotype, time.monotonic()
        due = now - self.drawn_at >= self.draw_every_s or step >= state.config.epochs
        if str(genotype) != self.drawn and due:
            with tempfile.TemporaryDirectory() as tmp:
                path = draw_genotype(genotype, Path(tmp) / "g.png", f"epoch {step}")
                self.writer.add_image("genotype", _png_to_chw(path), global_step=step)
            self.drawn, self.drawn_at = str(genotype), now
        self.writer.flush()


def _png_to_chw(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy()


def check_assigned_gpu(device: str) -> None:
    """A trial that Ray gave a GPU must not quietly train on the CPU because this node's torch
    cannot see it (a CPU-only torch, a missing driver): that is hours lost at CPU speed."""
    import ray
    import torch

    gpus = ray.get_gpu_ids()
    if gpus and device != "cpu" and not torch.cuda.is_available():
        raise RaynasError(f"Ray gave this trial GPU {gpus[0]} on node {ray.util.get_node_ip_address()}, but torch "
                          f"{torch.__version__} there cannot use CUDA (torch.cuda.is_available() is False)",
                          "install a CUDA build of torch on the GPU nodes (the raynas GPU image has one), or pass "
                          "--device cpu to train on the CPU on purpose")


def trainable(name: str, job: TrialJob, resources: dict[str, float]):
    """:func:`search_trial` for ``job`` as a Tune trainable called ``name``."""
    return named_trainable(name, search_trial, resources, job=job)


def named_trainable(name: str, function, resources: dict[str, float], **parameters):
    """A Tune function trainable as a class called ``name``, with its ``parameters`` and
    ``resources``: the dashboard and the logs show trial actors by their class, which for a
    plain function is ``ImplicitFunc``. Its actor ends quietly on SIGTERM
    (:func:`raynas.interrupts.exit_on_sigterm`)."""
    from ray import tune
    from ray.tune.trainable.function_trainable import wrap_function

    from raynas.interrupts import exit_on_sigterm

    wrapped = wrap_function(tune.with_resources(tune.with_parameters(function, **parameters), resources), name=name)

    def setup(self, config):  # the actor's main thread, where a signal handler can be set
        exit_on_sigterm()
        # the driver prints each epoch; Ray forwards this process's log to it (and to `ray job logs`),
        # where a line per checkpoint would drown the progress
        logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
        return wrapped.setup(self, config)

    return type(name, (wrapped,), {"setup": setup, "__qualname__": name, "__module__": wrapped.__module__})


def search_trial(trial_config: dict[str, Any], job: TrialJob) -> None:
    """The Tune function trainable of a race and of a zoo build."""
    import os

    from ray import tune

    config = trial_experiment(job, trial_config)
    check_assigned_gpu(config.search.device)
    workspace = Workspace.open(job.home, job.storage)
    workspace.store.check_unchanged(job.datasets, since="the race started")
    key = trial_config["source"]
    with tempfile.TemporaryDirectory(prefix="raynas-trial-") as tmp:
        restored = None
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:  # restarted after a failure, or an interrupted race resumed
            restored = Path(checkpoint.to_directory(os.path.join(tmp, "restored")))
        # images first: the report of the epoch then syncs them to storage with its checkpoint
        callbacks: list[Callback] = [TensorBoardImages(tune.get_context().get_trial_dir())] if job.tensorboard else []
        callbacks.append(TuneReport(Path(tmp) / "checkpoint"))
        callbacks.extend(job.callbacks)
        try:
            run_experiment(config, workspace, checkpoint=restored, checkpoint_dir=Path(tmp) / "checkpoint",
                           callbacks=callbacks, transfer_note=job.notes.get(key, {}), write_run_dir=False,
                           verbose=False)
        except SearchDiverged as exc:  # end the trial with the diverged epoch reported, no checkpoint
            last = dict(exc.result.history[-1]) if exc.result.history else {"epoch": 0}
            tune.report(tune_metrics({"val_acc": NAN, **last}, diverged=True))
    # Any other error (a RaynasError for bad input too) fails the trial: Tune marks it errored,
    # so the race shows why, and `--resume` runs it again from its last checkpoint once the
    # input is fixed (a trial that reported its failure and returned would count as finished).
