"""The benchmark's zoo: one source per dataset, pretrained once and shared by every target,
plus multi-dataset supernets that each leave out one fold of the targets.

Leave-one-out needs no copy of the zoo per target: a target is never offered an entry trained
on it (:meth:`raynas.transfer.sources.SelectionContext.candidates` excludes entries by name and
by content hash), so the zoo a target sees is the pool without its own entry, and the multi
supernet it sees is the one of the fold that left it out. :func:`check_no_leak` checks every
source an arm starts from all the same, and the results list each target's zoo.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from raynas.bench.config import TransferBenchConfig
from raynas.errors import RaynasError
from raynas.storage import atomic_write_text
from raynas.workspace import Workspace
from raynas.zoo.manifest import ZooManifest

MULTI_PREFIX = "bench-multi-"
POOL_FILE = "pool.json"
# what an interrupted or failed zoo build of the benchmark tells the user: the benchmark plans its zoo again
RESUME_WITH = ("run the same `raynas bench transfer` command again (published sources and finished trials are "
               "kept, unfinished sources start again)")


def multi_prefix(protocol: str) -> str:
    """Multi-dataset supernets of the leave-one-dataset-out folds keep the names they always had."""
    return MULTI_PREFIX if protocol == "dataset" else f"{MULTI_PREFIX}{protocol}-"


def is_protocol_multi(name: str, protocol: str) -> bool:
    """Whether the multi-dataset supernet ``name`` is one of ``protocol``'s folds."""
    prefix = multi_prefix(protocol)
    return name.startswith(prefix) and name[len(prefix):].isdigit()


def folds(targets: tuple[str, ...], k: int) -> list[tuple[str, ...]]:
    """Targets dealt round-robin into ``min(k, len(targets))`` folds."""
    k = max(1, min(k, len(targets)))
    return [tuple(targets[i::k]) for i in range(k)]


def multi_plan(config: TransferBenchConfig, sources: tuple[str, ...], targets: tuple[str, ...],
               domain_of: Callable[[str], str] | None = None) -> dict[str, tuple]:
    """Multi-dataset supernet name -> its datasets, per protocol: each is trained on every source
    outside one fold. Leave-one-dataset-out deals the targets into folds; leave-one-domain-out
    deals the targets' domains, so the supernet a target gets never saw its domain (none when
    neither the multi arm nor the probe, which may pick one, runs: their pretraining would be
    wasted)."""
    plan = {}
    if not {"multi", "probe"} & set(config.arms):
        return plan
    for protocol in config.protocols:
        if protocol == "dataset":
            groups = folds(targets, config.multi_folds)
        else:
            if domain_of is None:
                raise ValueError("leave-one-domain-out folds need the datasets' domains")
            domains = tuple(dict.fromkeys(domain_of(t) for t in targets))
            groups = [tuple(d for d in sources + targets if domain_of(d) in fold)
                      for fold in folds(domains, config.multi_folds)]
        for i, fold in enumerate(groups, 1):
            datasets = tuple(d for d in sources if d not in fold)
            if len(datasets) >= 2:
                plan[f"{multi_prefix(protocol)}{i}"] = datasets
    return plan


@dataclass
class Pool:
    sources: tuple[str, ...]
    multi: dict[str, tuple[str, ...]]
    build_s: float  # wall time of the pretraining this pool needed, summed over the runs that built it
    built_now: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "multi": {k: list(v) for k, v in self.multi.items()},
                "build_s": round(self.build_s, 1), "built_now": self.built_now}


def build_pool(config: TransferBenchConfig, sources: tuple[str, ...], targets: tuple[str, ...],
               workspace: Workspace, out: Path, verbose: bool = True) -> Pool:
    """Pretrain what the pool lacks (entries current for this config are kept), as Ray Tune trials."""
    from raynas.zoo.build import plan_jobs
    from raynas.zoo.tune_build import build_zoo

    multi = multi_plan(config, sources, targets, lambda name: workspace.store.info(name).domain)
    jobs, _ = plan_jobs(list(sources), config.source_search(sources[0]), workspace, rebuild=False)
    for name, datasets in multi.items():
        more, _ = plan_jobs(list(datasets), config.source_search(name), workspace, multi=name, rebuild=False)
        jobs += more
    previous_s = _previous_build_s(out)
    t0 = time.perf_counter()

    def record(built: list[str]) -> Pool:
        pool = Pool(sources, multi, previous_s + (time.perf_counter() - t0 if jobs else 0.0), built)
        atomic_write_text(out / POOL_FILE, json.dumps(pool.to_json(), indent=2))
        return pool

    if jobs:
        if verbose:
            print(f"pretraining {len(jobs)} zoo source(s): {', '.join(j.name for j in jobs)} ({config.source_epochs} "
                  f"epoch(s) of {config.source_steps or 'all'} steps each)", file=sys.stderr, flush=True)
        from raynas.search.results import new_folder

        try:
            # the build's run directory goes with the benchmark's output, not into the user's runs/
            build_zoo(jobs, workspace, run_dir=new_folder(out / "zoo-builds", "pool"), verbose=verbose,
                      resume_with=RESUME_WITH)
        except BaseException:
            record([])  # a stopped build's time counts in the zoo's build time when the benchmark is run again
            raise
    elif verbose:
        print("the zoo's sources are pretrained already (kept)", file=sys.stderr, flush=True)
    return record([j.name for j in jobs])


def _previous_build_s(out: Path) -> float:
    """The pretraining time earlier runs into ``out`` recorded; 0 when the file is missing or damaged
    (it only feeds the report's timing, so a damaged one is not worth stopping the benchmark for)."""
    try:
        value = json.loads((out / POOL_FILE).read_text()).get("build_s", 0.0)
    except (OSError, ValueError, AttributeError):
        return 0.0
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else 0.0


def trained_on(manifest: ZooManifest, target: str, content_hash: str) -> bool:
    return any(s.name == target or s.content_hash == content_hash for s in manifest.sources)


def check_no_leak(target: str, content_hash: str, manifest: ZooManifest | None, exclude: tuple[str, ...] = ()
                  ) -> None:
    """Refuse a source that saw the target (its result would measure memory, not transfer), or
    a dataset the protocol took out of the target's zoo."""
    if manifest is not None and trained_on(manifest, target, content_hash):
        raise RaynasError(f"leave-one-out broken: zoo entry '{manifest.name}' was trained on the target '{target}'",
                          "this is a bug in the benchmark's source selection; report it")
    off = sorted({s.name for s in manifest.sources} & set(exclude)) if manifest is not None else []
    if off:
        raise RaynasError(f"leave-one-domain-out broken: zoo entry '{manifest.name}' was trained on "
                          f"{', '.join(off)}, of the domain of '{target}'",
                          "this is a bug in the benchmark's source selection; report it")
