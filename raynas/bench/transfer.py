"""The transfer benchmark end to end: :func:`run_transfer_bench` is what ``raynas bench
transfer`` (and its Ray job) parse their options into and call.

    pool (pretrain the sources once) -> pick each arm's start per target and seed
    -> the search arms as one Tune experiment (parallel trials) -> a Tune race per target and seed
    -> speed-ups, gains, OT distance vs gain, per protocol -> the sources scored (probe, LogME)
    -> how much of its source's genotype each warm start kept
    -> results.json, results.md, plots

Everything it has done survives an interruption: the pool keeps its current entries, the Tune
experiment and the races are restored (finished trials are not run again), so running the
same command with the same ``--out`` continues where it stopped.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raynas.bench.analysis import analyse
from raynas.bench.arms import ARMS, RACE, NoStart, Pick, merge_picks, pick, target_zoo
from raynas.bench.config import PROTOCOLS, TransferBenchConfig
from raynas.bench.kinship import kinship, source_genotypes
from raynas.bench.pool import Pool, build_pool, check_no_leak, is_protocol_multi
from raynas.bench.trial import BenchJob, arm_experiment, arm_trial
from raynas.bench.transferability import score_sources, transferability
from raynas.errors import RaynasError
from raynas.storage import atomic_write_text
from raynas.workspace import Workspace

BENCH_FILE, RESULTS_FILE, EXPERIMENT = "bench.json", "results.json", "bench-arms"
INVOCATIONS_FILE = "invocations.json"


@dataclass
class BenchResult:
    out: Path
    answer: dict[str, Any]  # what results.json holds


def run_transfer_bench(config: TransferBenchConfig, home: str | Path | None, out: str | Path, *,
                       storage: str | None = None, verbose: bool = True, address: str | None = None) -> BenchResult:
    """Run (or continue) the benchmark of ``config`` in ``out``; see the module docstring."""
    from raynas.data import DatasetStore
    from raynas.transfer.head import HEAD_INITS
    from raynas.transfer.mapping import TRANSFER_MODES

    TRANSFER_MODES.get(config.transfer_mode)  # a typo fails here, not in every trial
    HEAD_INITS.get(config.head)
    t0 = time.perf_counter()
    out = Path(out)
    store = DatasetStore(home)
    sources, targets = _datasets(config, store)
    _claim(out, config)
    ledger = Invocations(out, t0)
    try:
        return _run(config, home, out, store, sources, targets, ledger, storage=storage, verbose=verbose,
                    address=address)
    finally:
        ledger.close(finished=False)  # stopped or failed: its time still counts once the benchmark finishes


def _run(config: TransferBenchConfig, home, out: Path, store, sources: tuple[str, ...], targets: tuple[str, ...],
         ledger: "Invocations", *, storage: str | None, verbose: bool, address: str | None) -> BenchResult:
    from raynas.ray_session import ensure_ray

    t0 = ledger.t0
    ensure_ray(address)
    workspace = Workspace.open(home, pool_storage(out, storage))
    say = _printer(verbose)
    say(f"transfer benchmark: {len(targets)} target(s) x {len(config.arms)} arm(s) x {config.seeds} seed(s); "
        f"zoo of {len(sources)} source(s); results in {out}")
    pool = build_pool(config, sources, targets, workspace, out, verbose)
    picks, zoos = plan(config, sources, targets, workspace)
    atomic_write_text(out / "plan.json", json.dumps({"picks": [p.to_json() for p in picks], "zoos": zoos}, indent=2))
    t_arms = time.perf_counter()
    runs = run_search_arms(config, [p for p in picks if ARMS.get(p.arm).runs != RACE], workspace, out, say)
    runs += run_race_arms(config, [p for p in picks if ARMS.get(p.arm).runs == RACE], workspace, out, say, verbose)
    for run in runs:  # what each search really started from, as its warm-start record says
        seen = set(run.get("source_datasets", "").split(","))
        for protocol in run["protocols"] or config.protocols:
            off = {run["target"], *zoos[protocol][run["target"]]["excluded"]} & seen
            if off:
                raise RaynasError(f"{PROTOCOLS[protocol]} broken: the {run['arm']} arm on '{run['target']}' started "
                                  f"from '{run['source']}', which was trained on {', '.join(sorted(off))}",
                                  "report this bug")
    order = {arm: i for i, arm in enumerate(config.arms)}
    runs.sort(key=lambda r: (targets.index(r["target"]), order[r["arm"]], r["seed"], tuple(r["protocols"])))
    by_protocol = {p: protocol_runs(runs, p) for p in config.protocols}
    infos = {t: store.info(t) for t in targets}
    chance = {t: {"classes": i.num_classes, "val": i.split_counts.get("val", 0)} for t, i in infos.items()}
    domains = {t: i.domain for t, i in infos.items()}
    protocols = {p: analyse(rs, config.tolerance, chance, domains) for p, rs in by_protocol.items()}
    say("scoring the sources the arms started from (linear probe and LogME)")
    scores = score_sources(runs, workspace, out, config)
    study = transferability(by_protocol, scores)
    kept = kinship(runs, source_genotypes([r["source"] for r in runs], workspace.zoo))
    answer = {"config": config.to_json(), "out": str(out), "sources": list(sources), "targets": list(targets),
              "pool": pool.to_json(), "zoos": zoos, "runs": runs, "protocols": protocols, "scores": scores,
              "transferability": study, "kinship": kept,
              **protocols[config.protocols[0]],
              "timings": {"arms_s": time.perf_counter() - t_arms, "total_s": time.perf_counter() - t0,
                          # closed before the report is written, so that the report counts this run
                          "zoo_build_s": pool.build_s, "invocations": ledger.close(finished=True)},
              "machine": machine()}
    from raynas.bench.report import write_report

    write_report(out, answer)
    return BenchResult(out, answer)


class Invocations:
    """Every run of the benchmark in its folder (``invocations.json``): a continued benchmark's
    own timings cover only its last run, these every run's wall time, stopped ones included."""

    def __init__(self, out: Path, t0: float):
        self.path, self.t0 = out / INVOCATIONS_FILE, t0
        self.started = time.time() - (time.perf_counter() - t0)
        self.closed: list[dict[str, Any]] | None = None

    def previous(self) -> list[dict[str, Any]]:
        try:
            before = json.loads(self.path.read_text())
            return before if isinstance(before, list) and all(isinstance(b, dict) for b in before) else []
        except (OSError, ValueError):  # none yet, or damaged: the count starts again rather than failing the run
            return []

    def close(self, finished: bool) -> list[dict[str, Any]]:
        """Record this run once (later calls return the same ledger)."""
        if self.closed is None:
            now = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
                   "wall_s": round(time.perf_counter() - self.t0, 1), "finished": finished}
            self.closed = [*self.previous(), now]
            atomic_write_text(self.path, json.dumps(self.closed, indent=2))
        return self.closed


def protocol_runs(runs: list[dict[str, Any]], protocol: str) -> list[dict[str, Any]]:
    """The runs that answer for ``protocol``: its own, and those that use no zoo (scratch, random genotypes)."""
    return [r for r in runs if not r["protocols"] or protocol in r["protocols"]]


def pool_storage(out: Path, storage: str | None) -> str:
    """Where the benchmark's zoo, embeddings and Tune results live: under ``out``, or under
    ``<storage>/bench/<out's name>`` on a cluster's shared storage; never the user's own zoo,
    which the benchmark's short pretrainings would otherwise replace."""
    if storage:
        from raynas.storage import Storage

        return Storage(storage).child("bench", out.name).uri
    return str((out / "store").resolve())


def _printer(verbose: bool):
    """Progress lines stamped with the clock time (a continued run's restored callbacks keep it right)."""
    def say(message: str) -> None:
        if verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
    return say


def _datasets(config: TransferBenchConfig, store) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sources and targets, checked to exist before anything is trained."""
    from raynas.data.builtin import BUILTINS

    if not config.sources or any(d in BUILTINS for d in (*config.sources, *config.targets)):
        store.ensure_builtins()
    sources = config.sources or builtin_sources(config.domains)
    targets = config.targets or sources
    for name in (*sources, *targets):
        store.info(name)
    if len(sources) < 2:
        raise RaynasError(f"--sources {','.join(sources)}: a leave-one-out zoo needs at least two sources",
                          "give more --sources")
    return tuple(sources), tuple(targets)


def builtin_sources(domains: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The suite's built-in datasets of ``domains`` (empty: the default domains; ``all``: every one), in
    the suite's order."""
    from raynas.bench.config import DEFAULT_DOMAINS
    from raynas.data.builtin import BUILTINS, in_suite

    known = list(dict.fromkeys(BUILTINS.get(n).domain for n in BUILTINS))
    domains = tuple(known) if "all" in domains else domains or DEFAULT_DOMAINS
    unknown = [d for d in domains if d not in known]
    if unknown:
        raise RaynasError(f"unknown domain(s) {', '.join(map(repr, unknown))}",
                          f"choose from {', '.join(map(repr, known))} (`raynas data list` shows them)")
    return tuple(n for n in BUILTINS if in_suite(n) and BUILTINS.get(n).domain in domains)


def excluded_by(protocol: str, target: str, sources: tuple[str, ...], store) -> tuple[str, ...]:
    """What ``protocol`` takes out of ``target``'s zoo besides the target's own entries: nothing
    (leave-one-dataset-out), or every source of the target's domain (leave-one-domain-out)."""
    if protocol == "dataset":
        return ()
    domain = store.info(target).domain
    return tuple(s for s in sources if s != target and store.info(s).domain == domain)


def _claim(out: Path, config: TransferBenchConfig) -> None:
    """``out`` holds this benchmark only: another configuration there is refused, not mixed in."""
    path = out / BENCH_FILE
    if path.is_file():
        try:
            before = json.loads(path.read_text())
            if not isinstance(before, dict):
                raise ValueError(before)
        except ValueError:
            raise RaynasError(f"{path} is damaged", "remove it (or pass another --out)") from None
        now = config.to_json()
        try:  # through the config class: a setting added since this folder was started ran at its default
            before = TransferBenchConfig.from_json(before).to_json()
        except RaynasError:  # settings this version does not know: reported as differences below
            pass
        if before != now:
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise RaynasError(f"{out} holds a benchmark with other settings ({', '.join(changed)} differ)",
                              "pass the same options to continue it, or another --out for a new one")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RaynasError(f"{out} exists and is not a benchmark folder", "pass an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(config.to_json(), indent=2))


def plan(config: TransferBenchConfig, sources: tuple[str, ...], targets: tuple[str, ...], workspace: Workspace
         ) -> tuple[list[Pick], dict[str, Any]]:
    """Each arm's start on each target and seed under each protocol (a run that serves several
    protocols once), and the zoo each target saw under each: ``zoos[protocol][target]``."""
    from raynas.search.loop import dataset_space
    from raynas.transfer.sources import SelectionContext

    picks, zoos = [], {p: {} for p in config.protocols}
    for target in targets:
        info = workspace.store.info(target)
        for protocol in config.protocols:
            exclude = excluded_by(protocol, target, sources, workspace.store)
            search = config.search(target, exclude=exclude)
            space = dataset_space(search, info)
            # the multi-dataset supernets offered are the protocol's own folds
            ctx = SelectionContext(search, info, space, workspace.store, workspace.zoo, workspace.embeddings,
                                   workspace.embedding_storage,
                                   admit=lambda m, p=protocol: m.kind != "multi" or is_protocol_multi(m.name, p))
            zoo = target_zoo(ctx, probe="probe" in config.arms)
            for name in zoo.names:
                check_no_leak(target, info.content_hash, workspace.zoo.manifest(name), exclude)
            skipped = {}
            for arm in config.arms:
                seeds = config.random_genotypes if arm == "random-genotype" else config.seeds
                try:
                    picks += [pick(zoo, arm, seed, protocol) for seed in range(seeds)]
                except NoStart as exc:
                    if protocol == "dataset":  # the arms asked for cannot run on this zoo at all
                        raise
                    skipped[arm] = exc.problem  # no source outside the target's domain: reported, not run
            zoos[protocol][target] = {"excluded": list(exclude), "ranking": zoo.ranking, "multi": zoo.multi,
                                      "skipped": skipped,
                                      **({"probe": zoo.probe, "probe_pick": zoo.probe_pick, "probe_s": zoo.probe_s}
                                         if zoo.probe_pick else {})}
    return merge_picks(picks), zoos


def arm_dirname(trial) -> str:
    """An arm trial's folder (and TensorBoard run): target, arm, protocols and seed, then its id."""
    pick = trial.config["pick"]
    protocols = "".join(f"-{p}" for p in pick.get("protocols") or ())
    return f"{pick['target']}-{pick['arm']}{protocols}-seed{pick['seed']}_{trial.trial_id}"


def run_search_arms(config: TransferBenchConfig, picks: list[Pick], workspace: Workspace, out: Path,
                    say) -> list[dict[str, Any]]:
    """The search and zero-shot arms as one Tune experiment: a trial each, in parallel."""
    from ray import tune

    from raynas.bench.progress import BenchProgress
    from raynas.race.ledger import ledger_filesystem, verify_ledger
    from raynas.race.race import quiet_tune, tune_storage
    from raynas.race.trial import named_trainable

    if not picks:
        return []
    quiet_tune()
    home, storage = workspace.locations()
    job = BenchJob(config.to_json(), home, storage)
    trainable = named_trainable("ArmTrial", arm_trial, {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial},
                                job=job)
    tstore = tune_storage(workspace)
    path = tstore.path(EXPERIMENT)
    callbacks = [BenchProgress(config.arm_epochs, say)]
    fs = ledger_filesystem(tstore, EXPERIMENT, out)  # records Tune's state as written, checks it when read
    if tune.Tuner.can_restore(path, storage_filesystem=tstore.fs):
        verify_ledger(out, tstore, EXPERIMENT)  # the Tune state is unpickled next: it must be what we wrote
        say(f"continuing the arms' Tune experiment ({path}): finished trials are kept")
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True,
                                   storage_filesystem=fs)
    else:
        say(f"running {len(picks)} arm trial(s) in Tune ({config.cpus_per_trial:g} CPU each)")
        tuner = tune.Tuner(
            trainable, param_space={"pick": tune.grid_search([p.to_json() for p in picks])},
            tune_config=tune.TuneConfig(reuse_actors=True,
                                        trial_name_creator=lambda t: t.config["pick"]["arm"] + "_" + t.trial_id[-5:],
                                        trial_dirname_creator=arm_dirname),
            run_config=tune.RunConfig(name=EXPERIMENT, storage_path=tstore.root, storage_filesystem=fs,
                                      failure_config=tune.FailureConfig(max_failures=2),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                      callbacks=callbacks, verbose=0))
    from raynas.interrupts import resume_hint

    with resume_hint("continue it with the same command (finished trials are kept)"):
        results = tuner.fit()
    runs, missing = [], []
    for r in results:
        p, m = (r.config or {}).get("pick"), r.metrics or {}
        if p is None:  # an interruption stopped Tune before this trial started: it has no config yet
            missing.append("a trial that had not started")
            continue
        if r.error is not None or "history" not in m:
            why = m.get("error") or (str(r.error).strip().splitlines()[-1] if r.error else "did not finish")
            missing.append(f"{p['target']}/{p['arm']}/seed{p['seed']}: {why}")
            continue
        # fitting the head before the search (--head probe) is charged like probing the sources
        charged = float(p.get("selection_s") or 0.0) + float(m.get("head_s") or 0.0)
        runs.append({**p, "selection_s": charged, "status": "diverged" if m.get("diverged") else "finished",
                     "history": json.loads(m["history"]), "retrain_test_acc": m.get("retrain_test_acc"),
                     "genotype": json.loads(m["genotype"]) if m.get("genotype") else None,
                     "source_datasets": m.get("source_datasets", ""), "time_s": m.get("time_total_s")})
    if missing:
        raise RaynasError(f"{len(missing)} arm trial(s) did not finish: {'; '.join(missing[:3])}",
                          "run the same command again to continue (finished trials are kept)")
    return runs


def run_race_arms(config: TransferBenchConfig, picks: list[Pick], workspace: Workspace, out: Path,
                  say, verbose: bool = False) -> list[dict[str, Any]]:
    """The race arm: a Tune race of the nearest sources per target and seed (ASHA stops the
    trailing ones), each in a run directory of its own, continued if it was interrupted."""
    from dataclasses import replace

    from raynas.race.config import RaceConfig
    from raynas.race.race import resume_race, run_race

    runs = []
    for p in picks:
        run_dir = out / "races" / f"{p.target}-{'-'.join(p.protocols)}-seed{p.seed}"
        result_file = run_dir / "result.json"
        if result_file.is_file():
            answer = json.loads(result_file.read_text())
        else:
            base = arm_experiment(config, {**p.to_json(), "source": "auto"})
            experiment = replace(base, race=RaceConfig(race=config.race, multi=False, baseline=False,
                                                       cpus_per_trial=config.cpus_per_trial,
                                                       gpus_per_trial=config.gpus_per_trial))
            say(f"race on {p.target} (seed {p.seed}, {', '.join(p.protocols)}): the {config.race} nearest sources")
            if (run_dir / "race.json").is_file():
                answer = resume_race(run_dir, workspace, verbose=verbose, tensorboard=False).answer
            else:
                answer = run_race(experiment, workspace, run_dir=run_dir, verbose=verbose, tensorboard=False).answer
        board = answer["leaderboard"]
        winner = answer["winner"]
        say(f"race on {p.target} (seed {p.seed}, {', '.join(p.protocols)}) won by {winner['source']}: val "
            f"{100 * (winner['final_val_acc'] or 0):.1f}%")
        runs.append({**p.to_json(), "source": winner["source"], "distance": winner.get("distance"),
                     "status": "finished", "history": answer["history"],
                     "retrain_test_acc": (answer.get("retrain") or {}).get("test_acc"),
                     "genotype": answer["genotype"], "source_datasets": ",".join(
                         answer.get("transfer", {}).get("source_datasets", [])),
                     "time_s": answer["timings"]["total_s"],
                     "trials": [{"source": t["source"], "distance": t["distance"], "epochs": t["epochs"],
                                 "curve": t["val_acc_curve"], "time_s": t["time_s"],
                                 "finished": t["status"] == "finished"} for t in board]})
    return runs


def machine() -> dict[str, Any]:
    import os
    import platform

    import ray
    import torch

    from raynas.threads import available_cpus

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpus": available_cpus(), "os_cpus": os.cpu_count(), "gpu": gpu, "python": platform.python_version(),
            "torch": torch.__version__, "ray": ray.__version__, "system": platform.system()}
