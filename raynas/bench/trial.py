"""The Tune trial of one benchmark arm on one target and seed.

A search arm runs :func:`raynas.experiment.run_experiment` from the arm's source (a zoo entry
named in the trial's config, or scratch) with a checkpoint reported every epoch, then retrains
the found architecture at the benchmark's one retrain budget. The zero-shot arm searches
nothing: it derives the nearest source's architecture and retrains it; the random-genotype arm
draws an architecture uniformly from the space and retrains it. The last report of a
trial carries the whole search history, the genotype and the retrained test accuracy, so the
results do not depend on Tune's per-epoch logs (a restored trial keeps them all the same).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raynas.bench.arms import ARMS, SAMPLE, ZERO_SHOT
from raynas.bench.config import TransferBenchConfig
from raynas.experiment import ExperimentConfig, SearchDiverged, run_experiment
from raynas.race.trial import TuneReport, tune_metrics
from raynas.workspace import Workspace


@dataclass(frozen=True)
class BenchJob:
    bench: dict[str, Any]  # TransferBenchConfig.to_json()
    home: str
    storage: str | None


def arm_experiment(bench: TransferBenchConfig, pick: dict[str, Any]) -> ExperimentConfig:
    search = bench.search(pick["target"], pick["seed"], pick["source"], tuple(pick.get("exclude") or ()))
    return ExperimentConfig(search, retrain=bench.retrain(pick["target"], pick["seed"]), publish=False)


def zero_shot(bench: TransferBenchConfig, pick: dict[str, Any], workspace: Workspace) -> dict[str, Any]:
    """The source's architecture on the target with no search: warm start, derive, retrain."""
    from raynas.search.retrain import retrain
    from raynas.space.genotype import derive_genotype
    from raynas.transfer.warm_start import warm_start

    config = arm_experiment(bench, pick)
    model, record = warm_start(config.search, workspace.store, workspace.zoo, workspace.embeddings,
                               workspace.embedding_storage)
    genotype = derive_genotype(model)
    result = retrain(genotype, config.retrain_config(model.space), workspace.store, verbose=False)
    return {"epoch": 0, "retrain_test_acc": result["test_acc"], "retrain_s": result["total_s"],
            "genotype": json.dumps(genotype.to_json()), "history": "[]",
            "source_datasets": ",".join(record.get("source_datasets", []))}


def draw_genotype(space, target: str, sample: int):
    """The random-genotype arm's ``sample``-th draw on ``target``: uniform over ``space``, seeded by
    both, so every run (and benchmarks/search_vs_random.py) draws the same architectures."""
    import random

    from raynas.space.genotype import sample_genotype

    return sample_genotype(space.ops, space.nodes, random.Random(f"{target}/sample{sample}"))


def random_genotype(bench: TransferBenchConfig, pick: dict[str, Any], workspace: Workspace) -> dict[str, Any]:
    """A genotype drawn uniformly from the target's search space (seeded by target and sample),
    retrained at the budget of every other arm."""
    from raynas.search.loop import dataset_space
    from raynas.search.retrain import retrain

    config = arm_experiment(bench, {**pick, "source": "scratch"})
    info = workspace.store.info(pick["target"])
    space = dataset_space(config.search, info)
    genotype = draw_genotype(space, pick["target"], pick["seed"])
    result = retrain(genotype, config.retrain_config(space), workspace.store, verbose=False)
    return {"epoch": 0, "retrain_test_acc": result["test_acc"], "retrain_s": result["total_s"],
            "genotype": json.dumps(genotype.to_json()), "history": "[]", "source_datasets": ""}


def arm_trial(trial_config: dict[str, Any], job: BenchJob) -> None:
    """The Tune function trainable of the benchmark (one arm, target and seed)."""
    bench = TransferBenchConfig.from_json(job.bench)
    pick = trial_config["pick"]
    workspace = Workspace.open(job.home, job.storage)
    # a RaynasError (bad input) fails the trial like any error: Tune marks it errored, so
    # continuing the benchmark once the input is fixed runs it again
    _run_arm(bench, pick, workspace)


def _run_arm(bench: TransferBenchConfig, pick: dict[str, Any], workspace: Workspace) -> None:
    from ray import tune

    runs = ARMS.get(pick["arm"]).runs
    if runs in (ZERO_SHOT, SAMPLE):
        tune.report((zero_shot if runs == ZERO_SHOT else random_genotype)(bench, pick, workspace))
        return
    with tempfile.TemporaryDirectory(prefix="raynas-bench-") as tmp:
        restored = None
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            restored = Path(checkpoint.to_directory(os.path.join(tmp, "restored")))
        try:
            out = run_experiment(arm_experiment(bench, pick), workspace, checkpoint=restored,
                                 checkpoint_dir=Path(tmp) / "checkpoint", callbacks=[TuneReport(Path(tmp) / "checkpoint")],
                                 write_run_dir=False, verbose=False)
        except SearchDiverged as exc:
            tune.report({**tune_metrics({"val_acc": float("nan"), **(exc.result.history or [{}])[-1]}, diverged=True),
                         "history": json.dumps(exc.result.history), "retrain_test_acc": float("nan")})
            return
        record = out.search.transfer or {}
        tune.report({"epoch": len(out.search.history), "retrain_test_acc": out.retrain["test_acc"],
                     "retrain_s": out.retrain["total_s"], "genotype": json.dumps(out.search.genotype.to_json()),
                     "history": json.dumps(out.search.history), "head_s": (record.get("head") or {}).get("seconds", 0.0),
                     "source_datasets": ",".join(record.get("source_datasets", []))})
