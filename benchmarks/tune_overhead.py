"""How much of a race's wall time goes into training, and how much into Tune around it.

Runs one race of ``--trials`` trials of about ``--trial-seconds`` each on this machine (one
CPU per trial, as many at once as there are CPUs) and splits its wall time into:

* training: the trials' epochs (search steps and validation), summed over trials and divided
  by the number of trial slots;
* in-trial overhead: reporting, checkpointing and the TensorBoard images of each epoch;
* the rest: starting trials (worker processes, imports, warm start, loaders), scheduling,
  planning the race and writing its report.

    python benchmarks/tune_overhead.py [--trials 4] [--trial-seconds 60] [--out result.json]

The race is HyperOpt over the search hyperparameters on one candidate (a search from scratch
on glyph-digits, preset cpu), so no zoo is needed. Goal: at least 90% of the wall time in
training. Ray's own start (once per session) is timed separately.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--trial-seconds", type=float, default=60.0, help="roughly, per trial")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--home", default=None, help="raynas home (default: a temporary one)")
    parser.add_argument("--no-tensorboard", action="store_true", help="leave out the per-epoch images")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import pandas as pd
    import ray

    from raynas.experiment import ExperimentConfig
    from raynas.race.config import RaceConfig
    from raynas.race.race import run_race
    from raynas.ray_session import ensure_ray
    from raynas.search.config import SearchConfig
    from raynas.workspace import Workspace

    home = Path(args.home or tempfile.mkdtemp(prefix="raynas-bench-"))
    workspace = Workspace.open(home)
    workspace.store.info("glyph-digits")  # build the dataset outside the timing
    # a step takes about 1.5-3 s with one thread on a small machine: size epochs to the trial time
    steps = max(1, round(args.trial_seconds / args.epochs / 2.5))
    config = ExperimentConfig(SearchConfig(dataset="glyph-digits", preset="cpu", epochs=args.epochs,
                                           max_steps_per_epoch=steps, transfer="scratch"),
                              RaceConfig(trials=args.trials, early_stop=False))
    t0 = time.perf_counter()
    ensure_ray()
    ray_start = time.perf_counter() - t0
    slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
    t0 = time.perf_counter()
    race = run_race(config, workspace, verbose=False, tensorboard=not args.no_tensorboard).answer
    wall = time.perf_counter() - t0

    epoch_s = reported_s = 0.0
    for row in race["leaderboard"]:
        progress = pd.read_csv(Path(row["path"]) / "progress.csv")
        epoch_s += progress["epoch_s"].sum()
        reported_s += progress["time_this_iter_s"].sum()  # from one report to the next, inside the trial
    slots = min(slots, args.trials)
    training = epoch_s / slots / wall
    in_trial = (reported_s - epoch_s) / slots / wall
    rows = {"ray_start_s": ray_start, "race_wall_s": wall, "trials": args.trials, "slots": slots,
            "epochs": args.epochs, "steps_per_epoch": steps, "trial_epoch_s_sum": epoch_s,
            "trial_reported_s_sum": reported_s, "share_training": training, "share_in_trial_overhead": in_trial,
            "share_start_schedule_report": 1 - training - in_trial,
            "mean_trial_s": reported_s / args.trials, "tensorboard": not args.no_tensorboard}
    print(f"{args.trials} trials of {args.epochs} epochs x {steps} steps (cpu preset), {slots} at once; "
          f"Ray start {ray_start:.1f} s (once per session)")
    print(f"race wall {wall:.0f} s; mean trial {rows['mean_trial_s']:.0f} s of reported time")
    print(f"training {100 * training:.1f}% | in-trial reporting, checkpoints, images {100 * in_trial:.1f}% | "
          f"trial start-up, scheduling, planning and report {100 * rows['share_start_schedule_report']:.1f}%")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"date": dt.date.today().isoformat(), "machine": platform.platform(),
                       "cpus": os.cpu_count(), **rows}, fh, indent=2)


if __name__ == "__main__":
    main()
