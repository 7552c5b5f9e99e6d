"""Pretraining the zoo: one supernet per source dataset, or one over several datasets.

Each source is an ordinary search experiment from scratch
(:func:`raynas.experiment.run_experiment`) whose supernet is published with the OT embedding
of its dataset. :func:`plan_jobs` checks everything and leaves out sources whose entry is
current; the jobs then run as the trials of one Ray Tune experiment
(:mod:`raynas.zoo.tune_build`), or one after another in this process (:func:`run_jobs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from raynas.data.validate import check_name
from raynas.errors import RaynasError
from raynas.search.config import SearchConfig
from raynas.workspace import Workspace


@dataclass(frozen=True)
class PretrainJob:
    """Everything one pretraining needs, as plain values (it may run on another node)."""

    config: SearchConfig  # its dataset names the zoo entry it publishes
    home: str
    storage: str | None  # the workspace's shared storage root (None: under the home)

    @property
    def name(self) -> str:
        return self.config.dataset


def pretrain(job: PretrainJob, verbose: bool = False) -> dict[str, Any]:
    """Search from scratch, publish the supernet and its embedding; returns the stored manifest as JSON."""
    from raynas.experiment import ExperimentConfig, run_experiment

    t0 = time.perf_counter()
    out = run_experiment(ExperimentConfig(job.config, publish=True), Workspace.open(job.home, job.storage),
                         verbose=verbose)
    return {**out.published.summary(), "seconds": time.perf_counter() - t0, "run_dir": str(out.run_dir)}


def plan_jobs(datasets: list[str], template: SearchConfig, workspace: Workspace, multi: str | None = None,
              rebuild: bool = True) -> tuple[list[PretrainJob], list[str]]:
    """The jobs to run (one per dataset, or one multi-dataset job named ``multi``; all search
    from scratch), and the names left out because their zoo entry is already current.

    Everything that can fail is checked here, before hours of training: unknown datasets,
    sizes, the multi entry's name, the encoder, and entries the results would replace.
    Without ``rebuild``, a source whose entry was pretrained with this very config on this
    very data is skipped, so rerunning an interrupted build finishes only what is missing.
    """
    from raynas.experiment import ExperimentConfig, check_experiment
    from raynas.search.results import remove_abandoned_runs

    remove_abandoned_runs(workspace.store.home.runs)  # the folders of earlier builds that were killed
    template = template.replace(transfer="scratch")
    if multi:
        check_name(multi)
        if workspace.store.exists(multi):
            raise RaynasError(f"--multi {multi}: '{multi}' is a dataset, whose zoo entry carries its name",
                              "give the multi-dataset supernet a name of its own")
        configs = [template.replace(dataset=multi, multi=tuple(datasets))]
    else:
        configs = [template.replace(dataset=d) for d in datasets]
    home, storage = workspace.locations()
    jobs, current = [], []
    for config in configs:
        check_experiment(ExperimentConfig(config, publish=True), workspace)
        if not rebuild and is_current(config, workspace):
            current.append(config.dataset)
        else:
            jobs.append(PretrainJob(config, home, storage))
    return jobs, current


IGNORED_FIELDS = ("device", "threads", "loader_backend", "loader_workers")  # how a search ran, not what it found


def is_current(config: SearchConfig, workspace: Workspace) -> bool:
    """The zoo's entry for ``config`` was pretrained with the same settings on the same data."""
    try:
        manifest = workspace.zoo.manifest(config.dataset)
    except RaynasError:
        return False
    if manifest.search is None:
        return False
    try:  # through the config class: a field added since the entry was built counts at its default
        stored = SearchConfig.from_json(manifest.search).to_json()
    except RaynasError:  # written by another version with fields this one does not know
        return False
    same = {k: v for k, v in stored.items() if k not in IGNORED_FIELDS} == {
        k: v for k, v in config.to_json().items() if k not in IGNORED_FIELDS}
    hashes = [workspace.store.info(d).content_hash for d in (config.multi or (config.dataset,))]
    return same and [s.content_hash for s in manifest.sources] == hashes


def run_jobs(jobs: list[PretrainJob], on_done: Callable[[dict[str, Any]], None] | None = None,
             verbose: bool = True) -> list[dict[str, Any]]:
    """Run pretraining jobs one after another in this process, without Ray (``--sequential``)."""
    done: list[dict[str, Any]] = []
    for job in jobs:
        done.append(pretrain(job, verbose=verbose))
        if on_done:
            on_done(done[-1])
    return done
