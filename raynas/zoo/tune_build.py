"""The zoo build as a Ray Tune experiment: one trial per source, the race's trial function.

Each source's search from scratch runs as a :func:`raynas.race.trial.search_trial` that
publishes the supernet when its last epoch ends. So a build has what a race has: a progress
line per epoch, a TensorBoard run per source (named after it), a checkpoint every epoch,
crashed trials retried from their last checkpoint, trial resources that an autoscaler can
meet, and ``--resume`` that continues each unfinished source from its last epoch.

The build's run directory (``<home>/runs/<time>-zoo-build``) holds ``build.json`` (every
source's experiment config, where the Tune experiment lives: what a resume needs),
``result.json`` when it ends, the digests of Tune's state (:mod:`raynas.race.ledger`) and a
``tune`` link to the Tune experiment when it is on a local disk.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from raynas.errors import RaynasError
from raynas.experiment import ExperimentConfig, check_experiment
from raynas.race.config import RaceConfig
from raynas.storage import Storage, atomic_write_text
from raynas.workspace import Workspace
from raynas.zoo.build import PretrainJob, is_current

BUILD_FILE = "build.json"
PRETRAIN_TRIAL = "PretrainTrial"  # the trials' actor class, as the dashboard shows it


@dataclass
class BuildResult:
    run_dir: Path
    rows: list[dict[str, Any]]  # one per published source, in the build's order


def build_zoo(jobs: list[PretrainJob], workspace: Workspace, *, trials: RaceConfig | None = None,
              run_dir: str | Path | None = None, verbose: bool = True, trial_callbacks: Sequence = (),
              tune_callbacks: Sequence = (), tensorboard: bool = True, address: str | None = None,
              resume_with: str | None = None) -> BuildResult:
    """Pretrain ``jobs`` (from :func:`raynas.zoo.build.plan_jobs`) as the trials of one Tune
    experiment. ``trials`` sizes, retries and limits them (its resource, concurrency and failure
    fields; the race's other fields do not apply). ``resume_with`` is what the messages of an
    interrupted or failed build tell the user to do (default: resume with ``raynas zoo build
    --resume <run_dir>``); a caller that plans the build itself (the benchmark, the demo) names
    its own command instead, which pretrains what is missing when run again."""
    from raynas.race.ledger import ledger_filesystem
    from raynas.race.race import link_experiment, quiet_tune, tensorboard_command, trial_resources, tune_storage
    from raynas.ray_session import ensure_ray
    from raynas.search.results import new_folder

    t0 = time.perf_counter()
    trials = trials or RaceConfig()
    if not jobs:
        raise RaynasError("nothing to pretrain", "every source named is current in the zoo (pass --rebuild)")
    quiet_tune()
    runs = None if run_dir else workspace.store.home.runs  # a home that cannot hold runs fails before Ray starts
    ensure_ray(address)
    resources = trial_resources(trials, jobs[0].config, workspace.store, verbose)
    sources = {job.name: ExperimentConfig(job.config, publish=True).to_json() for job in jobs}
    datasets = {name: workspace.store.info(name).content_hash
                for job in jobs for name in (job.config.multi or (job.config.dataset,))}
    storage = tune_storage(workspace)
    made_here = run_dir is None
    run_dir = Path(run_dir) if run_dir else new_folder(runs, "zoo-build")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        home, shared = workspace.locations()
        build = {"name": run_dir.name, "tune_storage": storage.uri, "experiment_path": storage.path(run_dir.name),
                 "home": home, "storage": shared, "datasets": datasets, "sources": sources,
                 "trials": trials.to_json(), "trial_resources": resources,
                 "tensorboard": tensorboard_command(storage, run_dir.name)}
        atomic_write_text(run_dir / BUILD_FILE, json.dumps(build, indent=2))
        fs = ledger_filesystem(storage, run_dir.name, run_dir)
        tuner = _tuner(build, trials, storage, fs, _job(build, workspace, trial_callbacks, tensorboard), verbose,
                       tune_callbacks)
        link_experiment(run_dir, storage)
    except BaseException:
        if made_here:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if verbose:
        print(f"pretraining {len(jobs)} source(s) as Ray Tune trials ({', '.join(sources)}), {resources['cpu']:g} "
              f"CPU and {resources['gpu']:g} GPU each\n  run directory: {run_dir}\n  watch it: {build['tensorboard']}",
              file=sys.stderr, flush=True)
    resume_with = resume_with or _how_to_resume(run_dir)
    return _conclude(_fit(tuner, resume_with), build, workspace, run_dir, t0, resume_with)


def resume_build(run_dir: str | Path, workspace: Workspace, *, verbose: bool = True, trial_callbacks: Sequence = (),
                 tensorboard: bool = True, address: str | None = None) -> BuildResult:
    """Continue an interrupted zoo build: published sources are kept, the others continue from
    their last epoch's checkpoint (with the progress and Tune callbacks of the first run, which
    Tune keeps with its state)."""
    from ray import tune

    from raynas.race.ledger import ledger_filesystem, verify_ledger
    from raynas.race.race import check_resume_workspace, quiet_tune
    from raynas.race.trial import trainable
    from raynas.ray_session import ensure_ray

    t0 = time.perf_counter()
    quiet_tune()
    run_dir = Path(run_dir)
    build = read_build_file(run_dir)
    storage = check_resume_workspace(build, workspace, run_dir, what="zoo build", record=BUILD_FILE)
    for experiment in build["sources"].values():
        check_experiment(ExperimentConfig.from_json(experiment), workspace)
    workspace.store.check_unchanged(build["datasets"], since="the zoo build started")
    if not storage.exists(build["name"], "tuner.pkl"):
        raise RaynasError(f"the zoo build's Tune experiment {storage.path(build['name'])} cannot be restored "
                          "(missing or damaged)", "start the build again (`raynas zoo build` pretrains what is "
                                                  "missing)")
    verify_ledger(run_dir, storage, build["name"])
    ensure_ray(address)
    job = _job(build, workspace, trial_callbacks, tensorboard)
    if verbose:
        print(f"resuming the zoo build in {run_dir}: unfinished sources continue from their last epoch",
              file=sys.stderr, flush=True)
    fs = ledger_filesystem(storage, build["name"], run_dir)
    tuner = tune.Tuner.restore(storage.path(build["name"]), trainable(PRETRAIN_TRIAL, job, build["trial_resources"]),
                               resume_unfinished=True, resume_errored=True, storage_filesystem=fs)
    resume_with = _how_to_resume(run_dir)
    return _conclude(_fit(tuner, resume_with), build, workspace, run_dir, t0, resume_with)


def _job(build: dict[str, Any], workspace: Workspace, callbacks: Sequence, tensorboard: bool):
    """What every trial shares; the home and storage are this workspace's (a resume has checked
    that build.json names the same), never paths taken from the file."""
    from raynas.race.trial import TrialJob

    home, storage = workspace.locations()
    return TrialJob(experiment=None, home=home, storage=storage, tensorboard=tensorboard,
                    callbacks=tuple(callbacks), datasets=dict(build["datasets"]), pretrain=dict(build["sources"]))


def _progress(build: dict[str, Any], verbose: bool) -> list:
    from raynas.race.progress import RaceProgress

    if not verbose:
        return []
    epochs = max(e["search"]["epochs"] for e in build["sources"].values())
    return [RaceProgress(epochs, {}, compare=False, finished="finished; published to the zoo")]


def _tuner(build: dict[str, Any], trials: RaceConfig, storage: Storage, fs, job, verbose: bool, extra: Sequence):
    from ray import tune

    from raynas.race.race import new_tuner
    from raynas.race.trial import trainable

    return new_tuner(trainable(PRETRAIN_TRIAL, job, build["trial_resources"]), name=build["name"], storage=storage,
                     fs=fs, space={"source": tune.grid_search(list(build["sources"]))},
                     max_concurrent=trials.max_concurrent, max_failures=trials.max_failures,
                     callbacks=[*_progress(build, verbose), *extra])


def _how_to_resume(run_dir: Path) -> str:
    """How ``raynas zoo build`` continues a build: unfinished sources go on from their last epoch."""
    return f"resume with `raynas zoo build --resume {run_dir}` (published sources are kept, the others continue " \
           "from their last epoch)"


def _fit(tuner, resume_with: str):
    from raynas.interrupts import resume_hint

    with resume_hint(resume_with):
        return tuner.fit()


def _conclude(results, build: dict[str, Any], workspace: Workspace, run_dir: Path, t0: float,
              resume_with: str) -> BuildResult:
    """Rows of the published sources; a build with sources that did not publish is an error that
    says which, why, and how to finish it."""
    from raynas.race.leaderboard import first_line, is_input_error
    from raynas.race.race import unfinished_trials

    sources = build["sources"]
    epochs = min(e["search"]["epochs"] for e in sources.values())  # a trial that ran fewer did not end
    unfinished = unfinished_trials(results, len(sources), epochs)
    if unfinished:
        raise RaynasError(f"the zoo build was interrupted: {unfinished} of {len(sources)} source(s) had not finished",
                          resume_with)
    by_source = {(r.config or {}).get("source"): r for r in results}
    rows, failed = [], {}
    for name, experiment in sources.items():
        result = by_source.get(name)
        search = ExperimentConfig.from_json(experiment).search
        if result is None:
            failed[name] = (f"{name}: no trial ran", None)
        elif result.error is not None:
            cause = getattr(result.error, "cause", result.error)
            failed[name] = (f"{name}: {first_line(result.error)}",
                            getattr(cause, "fix", None) if is_input_error(result.error) else None)
        elif (result.metrics or {}).get("diverged"):
            failed[name] = (f"{name} diverged in epoch {result.metrics.get('epoch')} (loss not finite)",
                            "lower the learning rates (--w-lr, --arch-lr)")
        elif not is_current(search, workspace):
            failed[name] = (f"{name} ran its epochs, but its zoo entry is not current (stopped while publishing, or "
                            "another build replaced it)", None)
        else:
            rows.append({**workspace.zoo.manifest(name).summary(),
                         "seconds": float((result.metrics or {}).get("time_total_s") or 0.0), "trial_dir": result.path})
    answer = {"run_dir": str(run_dir), "published": rows, "failed": {k: v[0] for k, v in failed.items()},
              "experiment_path": build["experiment_path"], "tensorboard": build["tensorboard"],
              "seconds": round(time.perf_counter() - t0, 1)}
    atomic_write_text(run_dir / "result.json", json.dumps(answer, indent=2))
    if failed:
        problem, fix = next(iter(failed.values()))
        published = f"; published: {', '.join(r['name'] for r in rows)}" if rows else ""
        raise RaynasError(f"pretraining failed for {', '.join(failed)}{published}; first error: {problem}",
                          f"{fix + '; then ' if fix else ''}{resume_with}")
    return BuildResult(run_dir, rows)


def read_build_file(run_dir: Path) -> dict[str, Any]:
    """``build.json``, checked field by field before a resume acts on it."""
    path = run_dir / BUILD_FILE
    if not path.is_file():
        raise RaynasError(f"{run_dir} is not a zoo build's run directory (no {BUILD_FILE})",
                          "give a run directory written by `raynas zoo build` (its first lines name it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for key, kind in (("name", str), ("tune_storage", str), ("experiment_path", str), ("sources", dict),
                          ("datasets", dict), ("trials", dict), ("trial_resources", dict), ("tensorboard", str)):
            if not isinstance(data.get(key), kind):
                raise ValueError(f"'{key}' is missing or not a {kind.__name__}")
        resources = data["trial_resources"]
        if set(resources) != {"cpu", "gpu"} or not all(isinstance(v, (int, float)) and v >= 0
                                                       for v in resources.values()):
            raise ValueError("'trial_resources' is not CPUs and GPUs per trial")
        if not data["sources"] or not all(isinstance(v, dict) for v in data["sources"].values()):
            raise ValueError("'sources' is not a mapping of names to experiment configs")
        for experiment in data["sources"].values():
            config = ExperimentConfig.from_json(experiment)
            if not config.publish or config.search.transfer != "scratch" or config.retrain is not None:
                raise ValueError(f"'{config.search.dataset}' is not a pretraining (from scratch, published)")
        RaceConfig.from_json(data["trials"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise RaynasError(f"{path} is damaged ({exc})", "start the build again") from None
    except RaynasError as exc:
        raise RaynasError(f"{path} is damaged ({exc.problem})", "start the build again") from None
    return data
