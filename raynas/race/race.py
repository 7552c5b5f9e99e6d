"""The race: warm-started searches as parallel Ray Tune trials, and what comes of the winner.

:func:`run_race` is what ``raynas search`` runs. In the driver it checks the experiment (and
each candidate's config), picks the candidates, sizes the trials to the cluster, then runs
one Tune trial per candidate (grid), or HyperOpt over the source and search hyperparameters
seeded with every candidate (``--trials``), with ASHA stopping the trials that trail. The
best finished trial wins: its genotype is derived from its checkpoint, written to the run
directory with the leaderboard, and retrained and published if asked (in a Ray task with a
trial's resources, so a GPU cluster retrains on a GPU node). :func:`resume_race` restores an
interrupted race (``Tuner.restore``) without redoing finished trials.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from raynas.errors import RaynasError
from raynas.experiment import ExperimentConfig, check_experiment, finish_checkpoint, read_config, write_config
from raynas.race.candidates import SCRATCH, Candidate, race_candidates
from raynas.race.leaderboard import Row, build_rows, winner
from raynas.race.report import RACE_FILE, read_race_file, write_race_file, write_report
from raynas.race.trial import TrialJob, trainable
from raynas.search.algorithms import create_algorithm
from raynas.search.loop import Callback, check_config, load_result
from raynas.search.results import new_run_dir
from raynas.model.artifact import CARD_FILE, MODEL_DIR, WEIGHTS_FILE
from raynas.storage import Storage, atomic_write_bytes
from raynas.workspace import Workspace

METRIC, MODE = "val_acc", "max"
SEARCH_TRIAL = "SearchTrial"  # the trials' actor class, as the dashboard shows it


@dataclass
class RaceResult:
    run_dir: Path
    rows: list[Row]
    winner: Row
    answer: dict[str, Any]  # what result.json holds


# -- planning (driver, before any trial) -------------------------------------------------
def trial_resources(race, search, store=None, verbose: bool = True) -> dict[str, float]:
    """CPUs and GPUs per trial: as asked, else a GPU when ``--device`` wants one (``auto``: when the
    cluster has GPUs or its autoscaler can add them), and 2 CPUs beside a GPU, plus one for each
    read-ahead thread when the search streams its data from ``store`` (the GPU would otherwise
    wait for batches; a CPU trial's step is the bottleneck, its loader threads take under 1% of
    a core: docs/benchmarks.md). Refused only when the cluster can never give a trial that much; an
    autoscaler may add the node first (see :mod:`raynas.capacity`)."""
    from raynas.capacity import Capacity, ensure_capacity
    from raynas.search.loop import streams

    device = search.device
    if race.gpus_per_trial is not None:
        gpus = race.gpus_per_trial
    else:
        cluster = Capacity.of_cluster() if device == "auto" else None
        wants_gpu = device.startswith("cuda") or (cluster is not None and cluster.has_gpus())
        gpus = 1.0 if wants_gpu else 0.0
        if cluster is not None and not wants_gpu and cluster.autoscaling and cluster.node_types is None and verbose:
            print("note: the cluster's autoscaler does not say whether it can add GPU nodes, so the trials ask for "
                  "CPUs only; pass --device cuda (or --gpus-per-trial 1) to give each trial a GPU",
                  file=sys.stderr, flush=True)
    cpus = race.cpus_per_trial
    if cpus is None:
        cpus = 1.0
        if gpus > 0:
            cpus = 2.0 + (search.loader_workers if store is not None and streams(search, store) else 0)
    if device.startswith("cuda") and gpus == 0:
        raise RaynasError(f"--device {device} but the trials get no GPU",
                          "pass --gpus-per-trial 1 (or a fraction), or --device auto")
    ensure_capacity({"CPU": cpus, "GPU": gpus}, "a trial", timeout_s=race.node_wait_s, verbose=verbose)
    return {"cpu": float(cpus), "gpu": float(gpus)}


def trial_dirname(trial) -> str:
    """A trial's folder, which is also its TensorBoard run: the source it warm-starts from, then its
    id (``glyph-upper_9eb3b_00000``), so runs are told apart by name."""
    source = re.sub(r"[^A-Za-z0-9._-]+", "-", str(trial.config.get("source", "trial")))[:48]
    return f"{source}_{trial.trial_id}"


def param_space(candidates: list[Candidate], experiment: ExperimentConfig) -> tuple[dict, Any, int]:
    """Tune's param space, search algorithm and sample count.

    One trial per candidate is a grid over the sources at the configured hyperparameters.
    More trials (``--trials``) add HyperOpt over the source, the weight and alpha learning
    rates, the weight decay and the alpha temperature, with every candidate at the configured
    values among its first points, so the grid's trials always run.
    """
    from ray import tune

    search, race = experiment.search, experiment.race
    keys = [c.key for c in candidates]
    a_lr = create_algorithm(search).a_lr()
    base = {"w_lr": search.w_lr, "a_lr": a_lr, "w_weight_decay": search.w_weight_decay,
            "alpha_temperature": search.alpha_temperature}
    trials = race.trials or len(keys)
    if trials < len(keys):
        raise RaynasError(f"--trials {trials} is fewer than the {len(keys)} candidates of the race ({', '.join(keys)})",
                          f"pass --trials {len(keys)} or more, or race fewer sources (--race)")
    if trials == len(keys):
        return {"source": tune.grid_search(keys), **base}, None, 1
    from ray.tune.search.hyperopt import HyperOptSearch

    wd = max(search.w_weight_decay, 1e-5)
    space = {"source": tune.choice(keys),
             "w_lr": tune.loguniform(search.w_lr / 5, min(search.w_lr * 5, 10.0)),
             "a_lr": tune.loguniform(a_lr / 10, min(a_lr * 10, 10.0)),
             "w_weight_decay": tune.loguniform(wd / 10, min(wd * 10, 1.0)),
             "alpha_temperature": tune.uniform(min(1.0, search.alpha_temperature),
                                               max(4.0, search.alpha_temperature))}
    seeds = [{"source": k, **base} for k in keys]
    algo = HyperOptSearch(metric=METRIC, mode=MODE, points_to_evaluate=seeds, random_state_seed=search.seed,
                          n_initial_points=max(len(keys), 4))
    return space, algo, trials


def scheduler(experiment: ExperimentConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    race, epochs = experiment.race, experiment.search.epochs
    if not race.early_stop or epochs < 2:
        return FIFOScheduler()
    return ASHAScheduler(time_attr="training_iteration", max_t=epochs, grace_period=min(race.grace_epochs, epochs),
                         reduction_factor=race.reduction_factor)


def tune_storage(workspace: Workspace) -> Storage:
    """Where Tune keeps the races' trials: ``<storage>/tune`` (shared by a cluster), else ``<home>/tune``."""
    if workspace.storage:
        return Storage(workspace.storage).child("tune")
    return Storage(workspace.store.home.root / "tune")


def tensorboard_command(storage: Storage, name: str) -> str:
    return f"tensorboard --logdir {storage.child(name).uri if not storage.is_local else storage.path(name)}"


def _validate_candidates(candidates: list[Candidate], experiment: ExperimentConfig, workspace: Workspace) -> None:
    """Each candidate's search config must pass the cheap check before any trial starts."""
    for c in candidates:
        check_config(experiment.search.replace(transfer=c.key if c.key != SCRATCH else "scratch"), workspace.store)


# -- running -------------------------------------------------------------------------
def run_race(config: ExperimentConfig, workspace: Workspace, *, run_dir: str | Path | None = None,
             verbose: bool = True, trial_callbacks: Sequence[Callback] = (), tune_callbacks: Sequence = (),
             tensorboard: bool = True, address: str | None = None) -> RaceResult:
    """Race the candidate warm starts of ``config`` as Tune trials; see the module docstring.

    ``trial_callbacks`` run in every trial after each epoch (they are pickled to the trials);
    ``tune_callbacks`` are Tune callbacks of the driver (loggers, integrations)."""
    from raynas.race.ledger import ledger_filesystem
    from raynas.ray_session import ensure_ray

    t0 = time.perf_counter()
    quiet_tune()
    space = check_experiment(config, workspace)
    if config.search.multi:
        raise RaynasError("a race searches one target dataset", "pretrain multi-dataset supernets with "
                                                                "`raynas zoo build --multi`")
    candidates, notes = race_candidates(config.search, config.race.race, config.race.multi, config.race.baseline,
                                        space, workspace)
    _validate_candidates(candidates, config, workspace)
    space_, algo, samples = param_space(candidates, config)
    runs = None if run_dir else workspace.store.home.runs  # a home that cannot hold runs fails before Ray starts
    ensure_ray(address)
    resources = trial_resources(config.race, config.search, workspace.store, verbose)
    datasets = race_datasets(config, workspace)
    storage = tune_storage(workspace)
    made_here = run_dir is None
    run_dir = Path(run_dir) if run_dir else new_run_dir(runs, config.search)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, config)
        home, shared = workspace.locations()
        write_race_file(run_dir, {"experiment_path": storage.path(run_dir.name), "tune_storage": storage.uri,
                                  "name": run_dir.name, "home": home, "storage": shared, "datasets": datasets,
                                  "candidates": [c.to_json() for c in candidates], "notes": notes,
                                  "trial_resources": resources, "samples": samples,
                                  "tensorboard": tensorboard_command(storage, run_dir.name)})
        job = _job(config, workspace, candidates, tensorboard, trial_callbacks, datasets)
        fs = ledger_filesystem(storage, run_dir.name, run_dir)  # records the digests of Tune's state as written
        tuner = _tuner(job, config, candidates, resources, storage, fs, run_dir.name, space_, algo, samples,
                       verbose, tune_callbacks)  # writes tuner.pkl: the storage's first write
        link_experiment(run_dir, storage)
    except BaseException:
        if made_here:  # a race that never started leaves no run folder holding only its config
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if verbose:
        _announce(config, candidates, notes, resources, samples, storage, run_dir)
    results = _fit(tuner, run_dir, pending_trials(resources, samples, config.race.max_concurrent))
    return _conclude(results, config, workspace, candidates, notes, run_dir, storage, resources, samples, t0,
                     verbose)


def resume_race(run_dir: str | Path, workspace: Workspace, *, verbose: bool = True,
                trial_callbacks: Sequence[Callback] = (), tensorboard: bool = True,
                address: str | None = None) -> RaceResult:
    """Continue an interrupted race: unfinished trials resume from their last checkpoints,
    finished ones are not run again."""
    from ray import tune

    from raynas.race.ledger import ledger_filesystem, verify_ledger
    from raynas.ray_session import ensure_ray

    t0 = time.perf_counter()
    quiet_tune()
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    race = read_race_file(run_dir)
    candidates = [Candidate(**c) for c in race["candidates"]]
    storage = check_resume_workspace(race, workspace, run_dir)
    check_experiment(config, workspace)
    _validate_candidates(candidates, config, workspace)
    workspace.store.check_unchanged(race.get("datasets", {}), since="the race started")
    path = storage.path(race["name"])
    if not storage.exists(race["name"], "tuner.pkl"):
        raise RaynasError(f"the race's Tune experiment {path} cannot be restored (missing or damaged)",
                          "start the search again")
    verify_ledger(run_dir, storage, race["name"])  # a clear refusal before Ray starts; every read is checked too
    ensure_ray(address)
    resources = race["trial_resources"]
    job = _job(config, workspace, candidates, tensorboard, trial_callbacks, race.get("datasets", {}))
    if verbose:
        print(f"resuming the race in {run_dir}: unfinished trials continue from their last checkpoints",
              file=sys.stderr)
    fs = ledger_filesystem(storage, race["name"], run_dir)
    tuner = tune.Tuner.restore(path, trainable(SEARCH_TRIAL, job, resources), resume_unfinished=True,
                               resume_errored=True, storage_filesystem=fs)
    results = _fit(tuner, run_dir, pending_trials(resources, race["samples"], config.race.max_concurrent))
    return _conclude(results, config, workspace, candidates, race.get("notes", []), run_dir, storage, resources,
                     race["samples"], t0, verbose)


def _fit(tuner, run_dir: Path, pending: int | None = None):
    """``tuner.fit()``, creating up to ``pending`` trials ahead of a free slot (see
    :func:`pending_trials`); a SIGTERM meanwhile (``ray job stop``) first says how to resume."""
    import os

    from raynas.interrupts import resume_hint

    import threading

    from raynas.figures import pyplot

    # the report after the trials draws with matplotlib: import it while the driver waits on trials
    threading.Thread(target=pyplot, name="raynas-import-pyplot", daemon=True).start()
    before = os.environ.get(PENDING_ENV)
    if pending is not None and before is None:  # Tune reads it when fit() starts; a user's setting wins
        os.environ[PENDING_ENV] = str(pending)
    try:
        with resume_hint(f"resume with `raynas search --resume {run_dir}`"):
            return tuner.fit()
    finally:
        if before is None:
            os.environ.pop(PENDING_ENV, None)


PENDING_ENV = "TUNE_MAX_PENDING_TRIALS_PG"


def pending_trials(resources: dict[str, float], samples: int, max_concurrent: int | None) -> int | None:
    """How many trials Tune may create before a slot is free, for a race with a searcher (HyperOpt).

    Tune's default there is one (unless ``max_concurrent`` is set): the first wave of trials then
    started one after another (5 s apart on a 2-CPU machine, 6% of a 4-trial race) and an
    autoscaler saw the resources of one trial at a time. Here: as many trials as fit the cluster
    now, or up to 16 while an autoscaler can add nodes. None: Tune's own choice is right."""
    import math

    from raynas.capacity import Capacity

    if samples <= 1 or max_concurrent:
        return None
    cpus, gpus = resources["cpu"], resources["gpu"]
    capacity = Capacity.of_cluster()
    fit = sum(int(min(n.get("CPU", 0) // cpus if cpus else math.inf, n.get("GPU", 0) // gpus if gpus else math.inf))
              for n in capacity.nodes if cpus or gpus)
    if capacity.autoscaling:
        fit = max(fit, 16)
    return max(1, min(samples, fit))


def race_datasets(config: ExperimentConfig, workspace: Workspace) -> dict[str, str]:
    """Content hashes of the datasets the race reads (its target, the retrain's), recorded at its
    start: a trial or a resume that finds one changed refuses to mix two datasets in one race."""
    names = [config.search.dataset]
    if config.retrain is not None and config.retrain.dataset:
        names.append(config.retrain.dataset)
    return {name: workspace.store.info(name).content_hash for name in dict.fromkeys(names)}


def check_resume_workspace(race: dict[str, Any], workspace: Workspace, run_dir: Path, what: str = "search",
                           record: str = RACE_FILE) -> Storage:
    """The Tune storage of the resumed race (or zoo build, whose run directory's ``record`` is
    ``build.json``): this workspace's, which must be the one the run ran in.

    The location is computed from ``--home``/``--storage``, never taken from ``race.json``, so an
    edited run directory cannot send the resume's writes elsewhere; a resume in another home or
    storage is refused before anything runs (its trials would fail on missing data, for good)."""
    storage = tune_storage(workspace)
    home, shared = workspace.locations()
    then_home, then_shared = race.get("home", home), race.get("storage", shared)
    same = (_same_place(then_home, home) and _same_place(then_shared, shared)
            and _same_place(race["tune_storage"], storage.uri))
    if not same:
        flags = f"--home {then_home}" + (f" --storage {then_shared}" if then_shared else "")
        raise RaynasError(f"--resume {run_dir}: the {what} ran with its Tune state in {race['tune_storage']}, but "
                          f"this home and storage keep it in {storage.uri}",
                          f"resume with the home and storage the {what} was started with: {flags}")
    if race["name"] != run_dir.name:
        raise RaynasError(f"--resume {run_dir}: its {record} names the Tune experiment '{race['name']}', not "
                          f"'{run_dir.name}' (the run directory was renamed, or {record} edited)",
                          f"give the run directory its original name, or start a new {what}")
    return storage


def link_experiment(run_dir: Path, storage: Storage) -> None:
    """A ``tune`` link in the run directory to its Tune experiment when that is on a local disk
    (one place per run); on remote storage the run's ``race.json`` or ``build.json`` names its URI."""
    if not storage.is_local:
        return
    link = run_dir / "tune"
    if not link.is_symlink():
        link.symlink_to(Path(storage.path(run_dir.name)), target_is_directory=True)


def _same_place(a: str | None, b: str | None) -> bool:
    """Two locations are the same: equal URIs, or local paths that resolve to the same folder."""
    if a is None or b is None or "://" in a or "://" in b:
        return a == b
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def quiet_tune() -> None:
    """Tune's console output off: the race prints its own progress (RaceProgress), and stdout
    must stay clean for ``--json``. Tune also warns when short epochs force frequent
    experiment snapshots (keeping only the last checkpoints does that); a race has few trials,
    so the snapshots are cheap."""
    import os

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the new output prints a box to stdout even at verbose=0
    logging.getLogger("ray.tune.tune").setLevel(logging.WARNING)  # "wrote the result files" after every fit
    # "removed hyperparameter values" for every trial whose config holds a tuple (a pick's protocols):
    # TensorBoard's hparams take only scalars and strings, and the tuples are in the run's own files
    logging.getLogger("ray.tune.logger.tensorboardx").setLevel(logging.WARNING)


def _job(config: ExperimentConfig, workspace: Workspace, candidates: list[Candidate], tensorboard: bool,
         callbacks: Sequence[Callback], datasets: dict[str, str]) -> TrialJob:
    home, storage = workspace.locations()
    return TrialJob(experiment=config.to_json(), home=home, storage=storage,
                    notes={c.key: c.note() for c in candidates if c.key != SCRATCH}, tensorboard=tensorboard,
                    callbacks=tuple(callbacks), datasets=dict(datasets))


def _tuner(job: TrialJob, config: ExperimentConfig, candidates: list[Candidate], resources: dict[str, float],
           storage: Storage, fs, name: str, space: dict, algo, samples: int, verbose: bool, extra: Sequence = ()):
    from raynas.race.progress import RaceProgress

    labels = {c.key: c.label for c in candidates}
    callbacks = [RaceProgress(config.search.epochs, labels, sampled=samples > 1)] if verbose else []
    return new_tuner(trainable(SEARCH_TRIAL, job, resources), name=name, storage=storage, fs=fs, space=space,
                     samples=samples, algo=algo, scheduler=scheduler(config), max_concurrent=config.race.max_concurrent,
                     max_failures=config.race.max_failures, callbacks=[*callbacks, *extra])


def new_tuner(trainable_cls, *, name: str, storage: Storage, fs, space: dict, samples: int = 1, algo=None,
              scheduler=None, max_concurrent: int | None = None, max_failures: int = 2, callbacks: Sequence = ()):
    """A Tune experiment of :mod:`raynas.race.trial` trials (a race's or a zoo build's), ``name``
    below ``storage``: trial folders named after their source, the last two checkpoints kept,
    crashed trials retried ``max_failures`` times from their last checkpoint."""
    from ray import tune

    return tune.Tuner(
        trainable_cls, param_space=space,
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, num_samples=samples, search_alg=algo,
                                    scheduler=scheduler, max_concurrent_trials=max_concurrent,
                                    reuse_actors=True,  # later trials skip the worker's start and imports
                                    trial_name_creator=lambda t: f"{t.config.get('source', 'trial')}_{t.trial_id[-5:]}",
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(name=name, storage_path=storage.root, storage_filesystem=fs,
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                                  sync_config=tune.SyncConfig(sync_artifacts=True), callbacks=list(callbacks),
                                  verbose=0))


def _conclude(results, config: ExperimentConfig, workspace: Workspace, candidates: list[Candidate],
              notes: list[str], run_dir: Path, storage: Storage, resources: dict[str, float], samples: int,
              t0: float, verbose: bool) -> RaceResult:
    """Leaderboard, winner, report; then the winner's retrain and publish, as the config asks."""
    expected = max(len(results), len(candidates) if samples == 1 else samples)  # unstarted trials are not listed
    unfinished = unfinished_trials(results, expected, config.search.epochs)
    if unfinished:
        raise RaynasError(f"the race was interrupted: {unfinished} of {expected} trial(s) had not ended",
                          f"resume it with `raynas search --resume {run_dir}` (finished trials are kept, the others "
                          "continue from their last checkpoints)")
    rows = build_rows(results, {c.key: c for c in candidates}, config.search.epochs)
    bad_input = [r for r in rows if r.bad_input]
    if bad_input:  # no winner yet: the race is not over until these ran on fixed input
        raise RaynasError(f"{len(bad_input)} trial(s) of the race failed on bad input ({bad_input[0].source}: "
                          f"{bad_input[0].error})",
                          f"fix the input, then resume with `raynas search --resume {run_dir}` (finished trials "
                          "are kept, the failed ones run again)")
    best = winner(rows)
    with best.checkpoint.as_directory() as ckpt:
        found = load_result(ckpt, workspace.store)
    board = []
    for i, row in enumerate(rows, 1):
        board.append({**row.to_json(), "rank": i})
    last = found.history[-1] if found.history else {}
    answer = {
        "run_dir": str(run_dir), "status": "finished", "config": config.to_json(),
        "dataset": {"name": config.search.dataset, "content_hash": workspace.store.info(config.search.dataset)
                    .content_hash},
        "candidates": [c.to_json() for c in candidates], "notes": notes, "leaderboard": board,
        "winner": board[rows.index(best)], "transfer": found.transfer or {"strategy": "scratch"},
        "epochs_done": len(found.history),
        "final": {k: last.get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc", "alpha_entropy",
                                            "skip_count")},
        "best_val_acc": max((h["val_acc"] for h in found.history), default=None), "history": found.history,
        "genotype": found.genotype.to_json(), "genotype_text": str(found.genotype),
        "space": found.space.to_json(), "trial_resources": resources,
        "experiment_path": storage.path(run_dir.name), "tensorboard": tensorboard_command(storage, run_dir.name),
        "timings": {"total_s": time.perf_counter() - t0,
                    "trials_s": sum(r.time_s for r in rows)},
    }
    write_report(run_dir, answer, rows, found.model, found.genotype)
    if config.retrain is not None or config.publish:
        if verbose:
            what = " and ".join(w for w, on in (("retraining", config.retrain), ("publishing", config.publish)) if on)
            print(f"{what} the winner ({best.source}, trial {best.trial})...", file=sys.stderr, flush=True)
        answer.update(_finish_winner(best, config, workspace, run_dir, resources))
        answer["timings"]["total_s"] = time.perf_counter() - t0
        write_report(run_dir, answer, rows, found.model, found.genotype)
    return RaceResult(run_dir, rows, best, answer)


def unfinished_trials(results, expected: int, epochs: int) -> int:
    """Trials of a ``ResultGrid`` that had not ended when ``fit()`` returned (trials that never
    started may be missing from it). Tune marks the trials it stops on an interruption (SIGINT)
    TERMINATED like finished ones, so a trial counts as ended when it failed, ran all ``epochs``,
    diverged, or has ``done`` in its last result (stopped by the scheduler)."""
    def ended(r) -> bool:
        m = r.metrics or {}
        return r.error is not None or bool(m.get("done") or m.get("diverged")) or int(m.get("epoch") or 0) >= epochs

    return max(len(results), expected) - sum(1 for r in results if ended(r))


def _finish_winner(best: Row, config: ExperimentConfig, workspace: Workspace, run_dir: Path,
                   resources: dict[str, float]) -> dict[str, Any]:
    """Retrain and publish the winner from its checkpoint, in a Ray task sized like a trial."""
    import ray

    home, storage = workspace.locations()
    task = ray.remote(_finish_task).options(name="FinishWinner", num_cpus=resources["cpu"], num_gpus=resources["gpu"],
                                            max_retries=0)
    try:
        answer = ray.get(task.remote(best.checkpoint, config.to_json(), home, storage, str(run_dir)))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, RaynasError) else None
        if cause is not None:
            raise RaynasError(f"finishing the winner failed: {cause.problem}", cause.fix) from None
        raise
    for name, data in answer.pop("files", {}).items():  # the task may have run on a node without this home
        atomic_write_bytes(run_dir / name, data)
    return answer


def _finish_task(checkpoint, experiment: dict[str, Any], home: str, storage: str | None,
                 run_dir: str) -> dict[str, Any]:
    workspace = Workspace.open(home, storage)
    with checkpoint.as_directory() as ckpt:
        out = finish_checkpoint(ckpt, ExperimentConfig.from_json(experiment), workspace, Path(run_dir),
                                verbose=False)
    answer: dict[str, Any] = {}
    if out.retrain is not None:
        answer["retrain"] = {k: v for k, v in out.retrain.items() if k != "history"}
        # the trained model and its record go back to the driver, weights before the card that names them
        answer["files"] = {name: (Path(run_dir) / name).read_bytes() for name in
                           (f"{MODEL_DIR}/{WEIGHTS_FILE}", f"{MODEL_DIR}/{CARD_FILE}", "retrain.json")}
    if out.published is not None:
        answer["published"] = out.published.summary()
    return answer


def _announce(config: ExperimentConfig, candidates: list[Candidate], notes: list[str], resources: dict[str, float],
              samples: int, storage: Storage, run_dir: Path) -> None:
    trials = samples if samples > 1 else len(candidates)
    how = "HyperOpt over sources and hyperparameters" if samples > 1 else "one trial per candidate"
    stop = (f"ASHA stops trailing trials (grace {config.race.grace_epochs} epoch(s), 1 in "
            f"{config.race.reduction_factor} goes on)" if config.race.early_stop and config.search.epochs > 1
            else "no early stopping")
    lines = [f"racing {trials} trial(s) on {config.search.dataset} ({how}; {stop}); "
             f"{resources['cpu']:g} CPU and {resources['gpu']:g} GPU per trial",
             *[f"  candidate {c.label}" for c in candidates], *[f"  note: {n}" for n in notes],
             f"  run directory: {run_dir}", f"  watch it: {tensorboard_command(storage, run_dir.name)}"]
    print("\n".join(lines), file=sys.stderr, flush=True)


def check_resume_matches(run_dir: str | Path, target: str | None, given: dict[str, Any]) -> ExperimentConfig:
    """``--resume RUN`` with a target or options that contradict the run's config is refused."""
    config = read_config(run_dir)
    if target is not None and target != config.search.dataset:
        raise RaynasError(f"--resume {run_dir}: the run searches '{config.search.dataset}', not '{target}'",
                          "drop the target (the run's config fixes it), or start a new search")
    if given:
        raise RaynasError(f"--resume takes the run's own settings; these options would change them: "
                          f"{', '.join(sorted(given))}", "resume without them, or start a new search")
    if not (Path(run_dir) / RACE_FILE).is_file():
        raise RaynasError(f"{run_dir} is not a race run directory (no {RACE_FILE})",
                          "give a run directory written by `raynas search`")
    return config

