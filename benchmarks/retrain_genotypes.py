"""Do searched genotypes beat random ones once the retrain is long enough to tell them apart?

The transfer benchmark retrains every genotype once, at a budget short enough to run 170
retrains on two cores; its random genotypes' spread (about a point) is as large as the
differences it measures. This benchmark takes a finished transfer benchmark's genotypes and
retrains them again at a larger budget in steps, with several retrain seeds and one thread
each, so that each genotype's accuracy comes with its own noise:

    python benchmarks/retrain_genotypes.py BENCH_DIR [--targets A,B] [--arms scratch,ot,random-genotype]
        [--protocol dataset] [--min-steps 1000] [--retrain-seeds 2] [--workers 2] [--out result.json]

Prints, per target, each arm's mean retrained test accuracy (over retrain seeds, and over
samples for the random genotypes) with its sd, and each searching arm minus random: the
median over targets, on how many targets it is higher, and the retrain noise beside it.
Each retrain uses the benchmark's own retrain settings for that run (cells, channels,
epochs, steps per epoch, image size), with ``--min-steps`` in place of its minimum and seeds
100, 101, ... so as not to repeat the benchmark's own retrain. The home must hold the
benchmark's datasets (``RAYNAS_HOME`` or ``--home``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RANDOM = "random-genotype"
SEED_BASE = 100


def retrain_one(job: dict) -> dict:
    """One genotype, one retrain seed, one thread (as a benchmark trial of one CPU runs it)."""
    from dataclasses import replace

    from raynas.bench.config import TransferBenchConfig
    from raynas.bench.trial import arm_experiment
    from raynas.data import DatasetStore
    from raynas.search.loop import dataset_space
    from raynas.search.retrain import retrain
    from raynas.space.genotype import Genotype

    store = DatasetStore(job["home"])
    experiment = arm_experiment(TransferBenchConfig.from_json(job["bench"]),
                                {"target": job["target"], "seed": job["run_seed"], "source": "scratch"})
    info = store.info(job["target"])
    space = dataset_space(experiment.search, info)
    config = replace(experiment.retrain_config(space), min_steps=job["min_steps"], seed=job["seed"], threads=1)
    t0 = time.perf_counter()
    result = retrain(Genotype.from_json(job["genotype"]), config, store, verbose=False)
    return {"target": job["target"], "arm": job["arm"], "run_seed": job["run_seed"], "seed": job["seed"],
            "test_acc": result["test_acc"], "seconds": time.perf_counter() - t0}


def plan(answer: dict, targets: list[str], arms: list[str], protocol: str, seeds: int, min_steps: int,
         home: str) -> list[dict]:
    jobs = []
    for run in answer["runs"]:
        mine = not run["protocols"] or protocol in run["protocols"]
        if run["target"] in targets and run["arm"] in arms and mine and run.get("genotype"):
            jobs += [{"bench": answer["config"], "home": home, "target": run["target"], "arm": run["arm"],
                      "run_seed": run["seed"], "genotype": run["genotype"], "min_steps": min_steps,
                      "seed": SEED_BASE + k} for k in range(seeds)]
    return jobs


def summarise(results: list[dict], arms: list[str]) -> dict:
    """Per target and arm: mean and sd over every retrain (seeds, and samples for random); per
    searching arm: its difference from random on each target, with the two arms' pooled sd."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in results:
        acc[(r["target"], r["arm"])].append(r["test_acc"])
    per_target = {f"{t}/{a}": {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else None,
                               "n": len(v)} for (t, a), v in sorted(acc.items())}
    out = {"per_target": per_target, "arms": {}}
    targets = sorted({t for t, _ in acc})
    for arm in arms:
        if arm == RANDOM:
            continue
        diffs, noise = [], []
        for t in targets:
            if (t, arm) in acc and (t, RANDOM) in acc:
                diffs.append(statistics.fmean(acc[(t, arm)]) - statistics.fmean(acc[(t, RANDOM)]))
                sds = [per_target[f"{t}/{a}"]["sd"] for a in (arm, RANDOM)]
                if None not in sds:
                    noise.append((sds[0] ** 2 / 2 + sds[1] ** 2 / 2) ** 0.5)
        if diffs:
            out["arms"][arm] = {"targets": len(diffs), "median_diff": statistics.median(diffs),
                                "mean_diff": statistics.fmean(diffs), "higher": sum(d > 0 for d in diffs),
                                "lower": sum(d < 0 for d in diffs),
                                "median_noise_sd": statistics.median(noise) if noise else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path, help="a finished `raynas bench transfer` folder (its results.json)")
    parser.add_argument("--targets", default="", help="comma-separated (default: every target of the benchmark)")
    parser.add_argument("--arms", default=f"scratch,ot,{RANDOM}")
    parser.add_argument("--protocol", default="dataset", help="whose warm-started runs to retrain")
    parser.add_argument("--min-steps", type=int, default=1000)
    parser.add_argument("--retrain-seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--home", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from raynas.home import default_home

    if args.min_steps < 1 or args.retrain_seeds < 1 or args.workers < 1:
        parser.error("--min-steps, --retrain-seeds and --workers must be at least 1")
    results_file = args.bench_dir / "results.json"
    try:
        answer = json.loads(results_file.read_text())
        known = set(answer["targets"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"{results_file} is not a finished transfer benchmark's results ({exc}); "
                     "give the --out folder of a `raynas bench transfer` that ran to the end")
    targets = [t for t in args.targets.split(",") if t] or answer["targets"]
    if unknown := sorted(set(targets) - known):
        parser.error(f"--targets {', '.join(unknown)}: not targets of that benchmark "
                     f"(it has {', '.join(sorted(known))})")
    arms = [a for a in args.arms.split(",") if a]
    home = str(args.home or default_home())
    jobs = plan(answer, targets, arms, args.protocol, args.retrain_seeds, args.min_steps, home)
    print(f"{len(jobs)} retrains ({args.retrain_seeds} seed(s) each, at least {args.min_steps} steps, "
          f"{args.workers} at a time)", flush=True)
    t0 = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for r in pool.map(retrain_one, jobs):
            results.append(r)
            print(f"  {r['target']}/{r['arm']}/run{r['run_seed']} seed {r['seed']}: test {100 * r['test_acc']:.1f}% "
                  f"({r['seconds']:.0f} s)", flush=True)
    summary = summarise(results, arms)
    print("\n| target | " + " | ".join(arms) + " |\n|---|" + "---|" * len(arms))
    for t in targets:
        cells = []
        for a in arms:
            s = summary["per_target"].get(f"{t}/{a}")
            sd = f" ± {100 * s['sd']:.1f}" if s and s["sd"] else ""
            cells.append("-" if s is None else f"{100 * s['mean']:.1f}{sd}")
        print(f"| {t} | " + " | ".join(cells) + " |")
    print("\n| arm | targets | median - random | mean - random | higher / lower | retrain noise (sd) |\n"
          "|---|---|---|---|---|---|")
    for arm, s in summary["arms"].items():
        noise = "-" if s["median_noise_sd"] is None else f"{100 * s['median_noise_sd']:.1f}"
        print(f"| {arm} | {s['targets']} | {100 * s['median_diff']:+.1f} | {100 * s['mean_diff']:+.1f} | "
              f"{s['higher']} / {s['lower']} | {noise} |")
    record = {"date": dt.date.today().isoformat(), "bench": str(args.bench_dir), "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "seconds": time.perf_counter() - t0,
        "results": results, "summary": summary}
    if args.out:
        from raynas.storage import atomic_write_text

        atomic_write_text(args.out, json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
