"""Which search settings find genotypes that retrain better than random ones?

The transfer benchmark's searches (the `tiny` preset, 16 epochs of 24 steps, first-order
DARTS) find genotypes no better than ones drawn uniformly from the space. This benchmark runs
scratch searches under several named settings on a few targets, then retrains every searched
genotype and a few random ones of the same space with several retrain seeds at one budget in
steps (one thread each, the benchmark's retrain network), so each setting is judged by its
genotypes' retrained test accuracy against random, with the retrain noise beside it:

    python benchmarks/search_vs_random.py [--targets A,B] [--settings bench,long,cpu] [--search-seeds 1]
        [--samples 3] [--retrain-seeds 2] [--min-steps 1000] [--workers 2] [--out result.json]
        [--reuse earlier.json]

Prints, per setting: the median over targets of searched minus random (points of test
accuracy), on how many targets searched is higher, the median retrain sd, the share of
parameter-free ops in the searched genotypes (random: 3 of the 7 ops) and the search's wall
time. Random genotypes are drawn per space (a preset's node count) as the benchmark's
random-genotype arm draws them. The home (``RAYNAS_HOME`` or ``--home``) gets the built-in
datasets if it lacks them. A search or retrain that fails (a diverged search) is recorded with
its error and left out of the summary, and the script exits 1; ``--out`` is rewritten after the
searches and at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RANDOM = "random"
SEED_BASE = 100
PARAMETER_FREE = ("max_pool_3x3", "avg_pool_3x3", "skip_connect")

# Every setting changes the benchmark's default search (the `tiny` preset, 16 epochs of 24
# steps, arch LR 3e-2, first-order DARTS) in one or two ways.
SETTINGS = {
    "bench": ({}, "the transfer benchmark's search"),
    "long": ({"epochs": 64}, "4x the epochs"),
    "warmup": ({"epochs": 32, "warmup_epochs": 16}, "16 epochs of weights only, then 16 with alphas"),
    "arch-lr": ({"a_lr": 3e-1}, "10x the arch LR"),
    "drnas": ({"algo": "drnas"}, "DrNAS (Dirichlet alphas; 30% warm-up)"),
    "pcdarts": ({"algo": "pcdarts"}, "PC-DARTS (partial channels, edge weights; 30% warm-up)"),
    "cpu": ({"preset": "cpu"}, "the cpu preset: 16x16 inputs, 8 channels, 5 cells, 4 nodes"),
    "cpu-long": ({"preset": "cpu", "epochs": 48}, "the cpu preset, 3x the epochs"),
}
DEFAULT_SETTINGS = ("bench", "long", "warmup", "cpu")
DEFAULT_TARGETS = ("mnist5k-rot", "shape-types", "glyph-lower")


def search_config(setting: str, target: str, seed: int):
    from dataclasses import replace

    from raynas.bench.config import TransferBenchConfig

    base = TransferBenchConfig().search(target, seed)
    return replace(base, **SETTINGS[setting][0], threads=1)


def space_of(config, store):
    from raynas.search.loop import dataset_space

    info = store.info(config.dataset)
    return dataset_space(config, info)


def failed(job: dict, exc: Exception) -> dict:
    """A job that failed (a diverged search, a bad dataset) is recorded, not fatal to the others."""
    return {**{k: v for k, v in job.items() if k != "home"}, "error": f"{type(exc).__name__}: {exc}"}


def run_search_job(job: dict) -> dict:
    try:
        return _search(job)
    except Exception as exc:  # noqa: BLE001 - reported per job, and in the output file
        return failed(job, exc)


def retrain_job(job: dict) -> dict:
    try:
        return _retrain(job)
    except Exception as exc:  # noqa: BLE001
        return failed(job, exc)


def _search(job: dict) -> dict:
    """One scratch search, one thread; returns its genotype and what its alphas did."""
    from raynas.data import DatasetStore
    from raynas.experiment import ExperimentConfig, run_experiment
    from raynas.workspace import Workspace

    config = search_config(job["setting"], job["target"], job["seed"])
    with tempfile.TemporaryDirectory(prefix="raynas-svr-") as tmp:
        workspace = Workspace.open(job["home"], tmp)
        t0 = time.perf_counter()
        out = run_experiment(ExperimentConfig(config, publish=False), workspace, write_run_dir=False, verbose=False)
    history = out.search.history
    space = space_of(config, DatasetStore(job["home"]))
    return {**{k: v for k, v in job.items() if k != "home"}, "genotype": out.search.genotype.to_json(),
            "search_s": time.perf_counter() - t0,
            "val_acc": history[-1]["val_acc"], "entropy": [history[0]["alpha_entropy"], history[-1]["alpha_entropy"]],
            "max_entropy": _max_entropy(space.ops)}


def _max_entropy(ops) -> float:
    import math

    return math.log(len(ops))


def _retrain(job: dict) -> dict:
    """One genotype, one retrain seed, one thread, at the transfer benchmark's retrain network."""
    from dataclasses import replace

    from raynas.bench.config import TransferBenchConfig
    from raynas.data import DatasetStore
    from raynas.search.retrain import retrain
    from raynas.space.genotype import Genotype

    store = DatasetStore(job["home"])
    search = search_config(job["setting"], job["target"], 0)
    space = space_of(search, store)
    config = replace(TransferBenchConfig().retrain(job["target"], job["seed"], space.image_size),
                     min_steps=job["min_steps"], threads=1)
    t0 = time.perf_counter()
    result = retrain(Genotype.from_json(job["genotype"]), config, store, verbose=False)
    return {**{k: v for k, v in job.items() if k != "home"}, "test_acc": result["test_acc"],
            "seconds": time.perf_counter() - t0}


def random_genotypes(setting: str, target: str, samples: int, store) -> list[dict]:
    """Genotypes drawn as the benchmark's random-genotype arm draws them, from the setting's space."""
    from raynas.bench.trial import draw_genotype

    space = space_of(search_config(setting, target, 0), store)
    return [draw_genotype(space, target, k).to_json() for k in range(samples)]


def space_key(setting: str) -> str:
    """Settings whose spaces and retrain image sizes agree share their random genotypes."""
    return SETTINGS[setting][0].get("preset", "tiny")


def parameter_free_share(genotype: dict) -> float:
    edges = [op for cell in ("normal", "reduce") for op, _ in genotype[cell]]
    return sum(op in PARAMETER_FREE for op in edges) / len(edges)


def summarise(searches: list[dict], retrains: list[dict], settings: list[str], targets: list[str]) -> dict:
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (setting or space, target, kind)
    per_genotype: dict[tuple, list[float]] = defaultdict(list)
    searches = [s for s in searches if "error" not in s]
    for r in (r for r in retrains if "error" not in r):
        acc[(r["group"], r["target"], r["kind"])].append(r["test_acc"])
        per_genotype[(r["group"], r["target"], r["kind"], r.get("sample", r.get("search_seed")))].append(r["test_acc"])
    noise = [statistics.stdev(v) for v in per_genotype.values() if len(v) > 1]
    out = {"settings": {}, "retrain_sd_median": statistics.median(noise) if noise else None}
    for setting in settings:
        rows, diffs = {}, []
        for target in targets:
            mine, rand = acc.get((setting, target, "searched")), acc.get((space_key(setting), target, RANDOM))
            if not mine or not rand:
                continue
            diff = 100 * (statistics.fmean(mine) - statistics.fmean(rand))
            diffs.append(diff)
            rows[target] = {"searched": 100 * statistics.fmean(mine), "random": 100 * statistics.fmean(rand),
                            "random_sd": 100 * statistics.stdev(rand) if len(rand) > 1 else None, "diff": diff}
        mine = [s for s in searches if s["setting"] == setting]
        out["settings"][setting] = {
            "description": SETTINGS[setting][1], "targets": rows,
            "median_diff": statistics.median(diffs) if diffs else None,
            "higher": sum(d > 0 for d in diffs), "of": len(diffs),
            "parameter_free": statistics.fmean(parameter_free_share(s["genotype"]) for s in mine) if mine else None,
            "entropy_last_over_max": (statistics.fmean(s["entropy"][1] / s["max_entropy"] for s in mine)
                                      if mine else None),
            "search_s": statistics.fmean(s["search_s"] for s in mine) if mine else None,
        }
    return out


def print_summary(summary: dict) -> None:
    print(f"\n{'setting':10} {'searched - random':>17} {'higher':>7} {'param-free':>10} {'H/Hmax':>7} "
          f"{'search s':>8}  per target (searched / random)")
    for name, s in summary["settings"].items():
        diff = "-" if s["median_diff"] is None else f"{s['median_diff']:+.1f}"
        per = ", ".join(f"{t} {r['searched']:.1f}/{r['random']:.1f}" for t, r in s["targets"].items())
        pf = "-" if s["parameter_free"] is None else f"{100 * s['parameter_free']:.0f}%"
        h = "-" if s["entropy_last_over_max"] is None else f"{s['entropy_last_over_max']:.3f}"
        t = "-" if s["search_s"] is None else f"{s['search_s']:.0f}"
        print(f"{name:10} {diff:>17} {s['higher']:>3}/{s['of']:<3} {pf:>10} {h:>7} {t:>8}  {per}")
    sd = summary["retrain_sd_median"]
    print(f"retrain noise (median sd of one genotype over retrain seeds): {'-' if sd is None else f'{100 * sd:.1f}'} "
          "points; random genotypes: 43% parameter-free ops in expectation")


def search_key(s: dict) -> tuple:
    return s["setting"], s["target"], s["seed"]


def retrain_key(r: dict) -> tuple:
    return (r["group"], r["target"], r["kind"], json.dumps(r["genotype"], sort_keys=True), r["seed"],
            r["min_steps"])


def read_reuse(path: str | None) -> tuple[dict, dict]:
    """The finished searches and retrains of an earlier run, by what makes them the same job."""
    if not path:
        return {}, {}
    try:
        before = json.loads(Path(path).expanduser().read_text())
        searches = {search_key(s): s for s in before["searches"] if "error" not in s}
        retrains = {retrain_key(r): r for r in before["retrains"] if "error" not in r}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"error: --reuse {path} is not an output of this script ({exc})") from None
    return searches, retrains


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS))
    p.add_argument("--settings", default=",".join(DEFAULT_SETTINGS), help=f"of {', '.join(SETTINGS)}")
    p.add_argument("--search-seeds", type=int, default=1)
    p.add_argument("--samples", type=int, default=3, help="random genotypes per target and space")
    p.add_argument("--retrain-seeds", type=int, default=2)
    p.add_argument("--min-steps", type=int, default=1000, help="retrain steps of every genotype")
    p.add_argument("--workers", type=int, default=2, help="processes, one thread each")
    p.add_argument("--home", default=None, help="raynas home with the datasets (default: RAYNAS_HOME)")
    p.add_argument("--out", default=None, help="write every search, retrain and the summary here as JSON")
    p.add_argument("--reuse", default=None, help="an earlier --out: its searches and retrains that this run would "
                                                 "repeat (same setting, target, seeds, genotype, steps) are taken "
                                                 "from it instead")
    args = p.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    args.settings = [s for s in args.settings.split(",") if s]
    unknown = [s for s in args.settings if s not in SETTINGS]
    problems = [f"unknown setting(s) {', '.join(unknown)}: choose from {', '.join(SETTINGS)}"] if unknown else []
    problems += [f"--{n.replace('_', '-')} must be at least 1, got {getattr(args, n)}"
                 for n in ("search_seeds", "samples", "retrain_seeds", "min_steps", "workers") if getattr(args, n) < 1]
    problems += ["--targets is empty"] if not args.targets else []
    if args.reuse and not Path(args.reuse).expanduser().is_file():
        problems += [f"--reuse {args.reuse}: no such file (give an earlier run's --out)"]
    if args.out and not Path(args.out).expanduser().resolve().parent.is_dir():
        problems += [f"--out {args.out}: its folder does not exist (create it first)"]
    if problems:
        p.error("; ".join(problems))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from raynas.data import DatasetStore
    from raynas.errors import RaynasError
    from raynas.storage import atomic_write_text

    home = str(Path(args.home or os.environ.get("RAYNAS_HOME") or DatasetStore().home.root).expanduser())
    store = DatasetStore(home)
    try:
        store.ensure_builtins()
        for t in args.targets:
            store.info(t)
    except RaynasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    searches_plan = [{"home": home, "setting": s, "target": t, "seed": k}
                     for s in args.settings for t in args.targets for k in range(args.search_seeds)]
    searches, retrains = [], []

    def save() -> dict:
        summary = summarise(searches, retrains, args.settings, args.targets)
        if args.out:  # after each phase: a later failure or Ctrl+C keeps what is done
            answer = {"date": dt.date.today().isoformat(),
                      "args": {k: v for k, v in vars(args).items() if k != "home"},
                      "settings": {s: SETTINGS[s][0] for s in args.settings}, "searches": searches,
                      "retrains": retrains, "summary": summary, "wall_s": time.perf_counter() - t0}
            atomic_write_text(Path(args.out).expanduser(), json.dumps(answer, indent=2))
        return summary

    done_searches, done_retrains = read_reuse(args.reuse)
    with ProcessPoolExecutor(args.workers) as pool:
        searches += [done_searches[search_key(s)] for s in searches_plan if search_key(s) in done_searches]
        for s in pool.map(run_search_job, [s for s in searches_plan if search_key(s) not in done_searches]):
            searches.append(s)
            name = f"{s['setting']}/{s['target']}/seed {s['seed']}"
            print(f"search {name} failed: {s['error']}" if "error" in s else
                  f"searched {name}: val {100 * s['val_acc']:.1f}%, "
                  f"{parameter_free_share(s['genotype']):.0%} parameter-free, {s['search_s']:.0f} s", flush=True)
        save()
        jobs = [{"home": home, "group": s["setting"], "setting": s["setting"], "target": s["target"],
                 "kind": "searched", "search_seed": s["seed"], "genotype": s["genotype"],
                 "min_steps": args.min_steps, "seed": SEED_BASE + r}
                for s in searches if "error" not in s for r in range(args.retrain_seeds)]
        spaces = {space_key(s): s for s in args.settings}  # one setting stands for each space
        for key, setting in spaces.items():
            for t in args.targets:
                for k, g in enumerate(random_genotypes(setting, t, args.samples, store)):
                    jobs += [{"home": home, "group": key, "setting": setting, "target": t, "kind": RANDOM,
                              "sample": k, "genotype": g, "min_steps": args.min_steps, "seed": SEED_BASE + r}
                             for r in range(args.retrain_seeds)]
        retrains += [{**done_retrains[retrain_key(j)], "reused": True}
                     for j in jobs if retrain_key(j) in done_retrains]
        for r in pool.map(retrain_job, [j for j in jobs if retrain_key(j) not in done_retrains]):
            retrains.append(r)
            name = f"{r['group']}/{r['target']}/{r['kind']}"
            print(f"retrain {name} failed: {r['error']}" if "error" in r else
                  f"retrained {name}: {100 * r['test_acc']:.1f}% ({r['seconds']:.0f} s)", flush=True)
    print_summary(save())
    failures = sum("error" in x for x in (*searches, *retrains))
    reused = sum(s in done_searches.values() for s in searches) + sum(bool(r.get("reused")) for r in retrains)
    print(f"{len(searches)} searches and {len(retrains)} retrains ({reused} reused) in "
          f"{(time.perf_counter() - t0) / 60:.1f} minutes{f'; {failures} failed' if failures else ''}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
