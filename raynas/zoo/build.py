"""Pretraining the zoo: one supernet per source dataset, or one over several datasets.

Each source is an ordinary search from scratch (:func:`raynas.search.loop.run_search`) whose
supernet is published with the OT embedding of its dataset. Several sources run in parallel
as Ray tasks of one CPU each when Ray is connected or ``parallel`` asks for it; otherwise
they run one after another in this process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from raynas.data.store import DatasetStore
from raynas.data.validate import check_name
from raynas.errors import RaynasError
from raynas.home import Home
from raynas.search.config import SearchConfig
from raynas.search.loop import build_state, run_search
from raynas.search.results import new_run_dir, write_config
from raynas.storage import Storage


@dataclass(frozen=True)
class PretrainJob:
    """Everything one pretraining needs, as plain values (it may run on another node)."""

    config: SearchConfig
    home: str
    zoo: str  # storage locations
    embeddings: str
    encoder: str
    name: str  # the zoo entry to publish


def pretrain(job: PretrainJob, verbose: bool = False) -> dict[str, Any]:
    """Search from scratch, publish the supernet and its embedding; returns the stored manifest as JSON."""
    from raynas.ot.encoders import create_encoder
    from raynas.service import open_embeddings, open_zoo
    from raynas.zoo.publish import publish_result

    t0 = time.perf_counter()
    store = DatasetStore(job.home)
    run_dir = new_run_dir(store.home.runs, job.config)
    write_config(run_dir, job.config)
    result = run_search(job.config, store=store, run_dir=run_dir, verbose=verbose)
    zoo, embeddings = open_zoo(job.zoo), open_embeddings(job.embeddings)
    encoder = None if job.config.multi else create_encoder(job.encoder, storage=Storage(job.embeddings),
                                                            home=store.home, zoo=zoo)
    manifest = publish_result(result, zoo, store, embeddings, encoder, name=job.name)
    return {**manifest.summary(), "seconds": time.perf_counter() - t0, "run_dir": str(run_dir)}


def plan_jobs(datasets: list[str], template: SearchConfig, home: Home, zoo: Storage, embeddings: Storage,
              encoder: str, multi: str | None = None) -> list[PretrainJob]:
    """One job per dataset, or one multi-dataset job named ``multi``.

    Everything that can fail is checked here, before hours of training: unknown datasets,
    sizes, the multi entry's name, the encoder, and entries the results would replace.
    """
    from raynas.ot.encoders import create_encoder
    from raynas.service import open_zoo

    store = DatasetStore(home)
    handle = open_zoo(zoo)
    locations = dict(home=str(home.root), zoo=zoo.uri if not zoo.is_local else zoo.root,
                     embeddings=embeddings.uri if not embeddings.is_local else embeddings.root, encoder=encoder)
    if multi:
        check_name(multi)
        if store.exists(multi):
            raise RaynasError(f"--multi {multi}: '{multi}' is a dataset, whose zoo entry carries its name",
                              "give the multi-dataset supernet a name of its own")
        configs = [(template.replace(dataset=multi, multi=tuple(datasets)), multi)]
    else:
        create_encoder(encoder, storage=embeddings, home=home, zoo=handle)  # unknown or unusable: fail now
        configs = [(template.replace(dataset=d), d) for d in datasets]
    for config, name in configs:
        space = build_state(config, store).space
        handle.check_replaceable(name, "multi" if config.multi else "single", space.to_json())
    return [PretrainJob(config, name=name, **locations) for config, name in configs]


def run_jobs(jobs: list[PretrainJob], parallel: bool, on_done: Callable[[dict[str, Any]], None] | None = None,
             verbose: bool = True) -> list[dict[str, Any]]:
    """Run pretraining jobs, in parallel Ray tasks (one CPU and one torch thread each) or in turn."""
    done: list[dict[str, Any]] = []

    def finish(row: dict[str, Any]) -> None:
        done.append(row)
        if on_done:
            on_done(row)

    if not parallel or len(jobs) < 2:
        for job in jobs:
            finish(pretrain(job, verbose=verbose))
        return done
    import ray

    task = ray.remote(num_cpus=1)(pretrain)
    pending = {task.remote(PretrainJob(job.config.replace(threads=1), job.home, job.zoo, job.embeddings,
                                       job.encoder, job.name)): job.name for job in jobs}
    failed: dict[str, BaseException] = {}
    while pending:  # every job runs to its end, so one failure does not lose the others' work
        [ready], _ = ray.wait(list(pending), num_returns=1)
        name = pending.pop(ready)
        try:
            finish(ray.get(ready))
        except ray.exceptions.RayTaskError as exc:
            failed[name] = exc.cause if isinstance(exc.cause, BaseException) else exc
    if failed:
        first = next(iter(failed.values()))
        published = f"; published: {', '.join(r['name'] for r in done)}" if done else ""
        problem = (f"pretraining failed for {', '.join(failed)}{published}; first error: "
                   f"{getattr(first, 'problem', first)}")
        raise RaynasError(problem, getattr(first, "fix", None)) from first
    return done

