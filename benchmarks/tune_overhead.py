"""How much of a race's wall time goes into training, and how much into Tune around it.

Runs one race of ``--trials`` trials of about ``--trial-seconds`` each on this machine (one
CPU per trial, as many at once as there are CPUs; steps per epoch are sized from one short
epoch measured first) and splits its wall time into:

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


def size_epochs(search, workspace, trial_seconds: float) -> tuple[int, float, float]:
    """Steps per epoch for trials of about ``trial_seconds``: one epoch of 3 steps with one thread
    (as a trial of one CPU runs) measures a step and the validation here and now."""
    from raynas.search.loop import run_search

    result = run_search(search.replace(epochs=1, max_steps_per_epoch=3, threads=1), store=workspace.store,
                        verbose=False)
    epoch = result.history[0]
    step_s = epoch["search_step_s"]
    val_s = max(0.0, epoch["epoch_s"] - 3 * step_s)
    steps = max(1, round((trial_seconds / search.epochs - val_s) / step_s))
    print(f"calibration: a search step {step_s:.2f} s, validation {val_s:.2f} s: {steps} steps per epoch")
    return steps, step_s, val_s


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
    search = SearchConfig(dataset="glyph-digits", preset="cpu", epochs=args.epochs, transfer="scratch")
    steps, step_s, val_s = size_epochs(search, workspace, args.trial_seconds)
    config = ExperimentConfig(search.replace(max_steps_per_epoch=steps), RaceConfig(trials=args.trials,
                                                                                    early_stop=False))
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
    rows = {"calibrated_step_s": step_s, "calibrated_val_s": val_s, "ray_start_s": ray_start, "race_wall_s": wall, "trials": args.trials, "slots": slots,
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
