"""Search-step time and peak GPU memory at the DARTS paper's scale, for a GPU node.

One run times every variant on the ``gpu`` preset (16 channels, 8 cells, 4 nodes, 32x32,
batch 64): the fused and the reference cell; first-order DARTS, second-order DARTS and
PC-DARTS; float32 and bfloat16 autocast; and ``torch.compile`` of the fused cell (first-order,
both precisions). A step is what the search loop does per batch: the algorithm's architecture
step plus the weight step. Each variant gets warm-up steps (compiling happens there), then
``--steps`` timed ones; peak memory is the CUDA allocator's during the timed steps. It prints
times and ratios to the fused first-order float32 step and writes JSON. ``--skip-steps`` leaves
the steps out.

    python benchmarks/gpu.py [--steps 10] [--out gpu.json]      # on a GPU node, a few minutes
    python benchmarks/gpu.py --dry --out dry.json                 # on CPU: tiny preset, 1 step, no compile

Then it checks that the ``stream`` loader (the one for data larger than memory) keeps the GPU fed:
for batch sizes 64, 128 and 256, the images per second it delivers to the GPU (32x32 RGB, shuffled
and augmented, from a generated dataset of 20,000 images stored as an import stores them) against
the images per second a fused first-order step consumes (a train and a val batch per step). A
ratio above 1 means the loader alone outpaces the step; it runs beside the step in a search, so
the margin is what the read-ahead threads have for sharing the node's CPUs. ``--skip-loader``
leaves it out.

Then it races two warm-started trials sharing the GPU (half a GPU each): a throwaway home gets
two small zoo entries pretrained on the GPU, and the race's wall time is compared with the sum
of its trials' times (below 1: the trials overlapped on the one GPU). ``--skip-race`` leaves it out.

``--dry`` checks the benchmark itself on a machine without a GPU (the tests run it): the tiny
preset on CPU, one timed step per variant, the compiled variants skipped (compiling the
supernet takes minutes on a small CPU), and the race on CPU with one CPU per trial.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import raynas  # noqa: F401 - first, as in every raynas process: it configures OpenMP before torch loads
import torch
import torch.nn.functional as F

from raynas.search.algorithms import StepContext, create_algorithm
from raynas.search.algorithms.base import frozen
from raynas.search.config import SearchConfig
from raynas.space.config import PRESETS
from raynas.space.supernet import create_supernet

BASELINE = "fused darts fp32"


def variants() -> list[dict]:
    """Every variant: cell, algorithm, precision, compiled or not."""
    out = []
    for cell in ("fused", "reference"):
        for algo in ("darts", "darts2", "pcdarts"):
            for precision in ("fp32", "bf16"):
                out.append({"cell": cell, "algo": algo, "precision": precision, "compile": False})
    for precision in ("fp32", "bf16"):
        out.append({"cell": "fused", "algo": "darts", "precision": precision, "compile": True})
    return out


def name_of(v: dict) -> str:
    return f"{v['cell']} {v['algo']} {v['precision']}{' compiled' if v['compile'] else ''}"


def measure(v: dict, preset_name: str, device: torch.device, warmup: int, steps: int,
            batch_size: int | None = None) -> dict:
    """Median seconds per step and peak CUDA memory (MiB; None on CPU) of one variant."""
    config = SearchConfig(dataset="synthetic", algo=v["algo"], preset=preset_name)
    algorithm = create_algorithm(config)
    preset = PRESETS.get(preset_name)
    space = algorithm.configure_space(preset.space(in_channels=3, num_classes=10))
    model = create_supernet(space, v["cell"], seed=0).to(device)
    if v["compile"]:
        model.compile()  # in place: the search code keeps calling the supernet's own methods
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(0)
    shape = (batch_size or preset.batch_size, 3, preset.image_size, preset.image_size)
    train = (torch.randn(shape, generator=g).to(device), torch.randint(0, 10, shape[:1], generator=g).to(device))
    val = (torch.randn(shape, generator=g).to(device), torch.randint(0, 10, shape[:1], generator=g).to(device))
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if v["precision"] == "bf16"
                else contextlib.nullcontext())

    def step() -> float:
        t0 = time.perf_counter()
        with autocast:
            algorithm.arch_step(StepContext(model, w_opt, a_opt, config, 0.025), train, val)
            w_opt.zero_grad(set_to_none=True)
            with frozen(model.arch_parameters()):
                F.cross_entropy(model(train[0]), train[1]).backward()
        torch.nn.utils.clip_grad_norm_(model.weight_parameters(), 5.0)
        w_opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    first = [step() for _ in range(warmup)]  # compiling, cuDNN autotuning
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [step() for _ in range(steps)]
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else None
    return {"median_s": statistics.median(times), "warmup_s": sum(first), "peak_mib": peak}


def loader_keeps_up(dry: bool, device: torch.device, home: Path, warmup: int, steps: int) -> list[dict]:
    """Images/s of the stream loader (delivered on ``device``) against a fused first-order step's
    demand, per batch size."""
    from loader_throughput import generate_dataset

    from raynas.data import DatasetStore
    from raynas.data.loader import LoaderConfig, create_loaders

    store = DatasetStore(home)
    images, preset = (2000, "tiny") if dry else (20_000, "gpu")
    generate_dataset(store, images, 32, "feed")
    size = PRESETS.get(preset).image_size
    rows = []
    for batch in ((32, 64) if dry else (64, 128, 256)):
        config = LoaderConfig(image_size=size, channels=3, batch_size=batch, augment=True, backend="stream",
                              device=str(device))
        loader = create_loaders("feed", config, ("train",), store)["train"]
        for _ in loader:  # the first epoch: caches warm
            pass
        t0, n = time.perf_counter(), 0
        for x, _ in loader:
            n += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        loader_img_s = n / (time.perf_counter() - t0)
        step = measure({"cell": "fused", "algo": "darts", "precision": "fp32", "compile": False}, preset, device,
                       warmup, steps, batch_size=batch)
        step_img_s = 2 * batch / step["median_s"]  # a train and a val batch per step
        rows.append({"batch_size": batch, "loader_img_s": loader_img_s, "step_img_s": step_img_s,
                     "loader_over_step": loader_img_s / step_img_s})
    return rows


def race_sharing_the_device(dry: bool, home: Path) -> dict:
    """Two warm-started trials racing on one GPU (half each), or on CPU in the dry mode."""
    from raynas.data import DatasetStore
    from raynas.experiment import ExperimentConfig
    from raynas.race.config import RaceConfig
    from raynas.race.race import run_race
    from raynas.ray_session import ensure_ray
    from raynas.workspace import Workspace
    from raynas.zoo.build import plan_jobs, run_jobs

    sources, target = ["glyph-upper", "mnist5k"], "glyph-digits"
    size = dict(preset="tiny", epochs=1, max_steps_per_epoch=2, device="cpu") if dry else \
        dict(preset="gpu", epochs=2, max_steps_per_epoch=20, device="cuda")
    DatasetStore(home).ensure_builtins([*sources, target])
    ensure_ray()
    workspace = Workspace.open(home)
    jobs, _ = plan_jobs(sources, SearchConfig(dataset="x", **size), workspace)
    run_jobs(jobs, verbose=False)
    race = RaceConfig(race=2, multi=False, early_stop=False, cpus_per_trial=1, gpus_per_trial=0 if dry else 0.5)
    t0 = time.perf_counter()
    result = run_race(ExperimentConfig(SearchConfig(dataset=target, **size), race), workspace, verbose=False,
                      tensorboard=False)
    wall = time.perf_counter() - t0
    trials = [{"source": r["source"], "time_s": r["time_s"], "status": r["status"]}
              for r in result.answer["leaderboard"]]
    return {"gpus_per_trial": race.gpus_per_trial, "wall_s": wall, "trials": trials,
            "wall_over_trials": wall / max(sum(t["time_s"] for t in trials), 1e-9)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compiling happens there)")
    p.add_argument("--dry", action="store_true", help="check the benchmark on CPU: tiny preset, 1 step, no compile")
    p.add_argument("--skip-steps", action="store_true", help="leave out the timed search-step variants")
    p.add_argument("--skip-race", action="store_true", help="leave out the race of two trials sharing the GPU")
    p.add_argument("--skip-loader", action="store_true", help="leave out the check that the stream loader keeps up")
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be at least 1 and --warmup at least 0")
    device = torch.device("cpu" if args.dry or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.dry:
        p.error("no GPU here: run it on a GPU node, or pass --dry to check it on CPU")
    preset, steps, warmup = ("tiny", 1, 1) if args.dry else ("gpu", args.steps, args.warmup)
    if device.type == "cuda":  # float32 means float32: TF32 would blur the bf16 comparison
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    rows = []
    for v in [] if args.skip_steps else variants():
        row = {"variant": name_of(v), **v}
        if v["compile"] and args.dry:
            row["skipped"] = "compiling the supernet on CPU takes minutes; runs on a GPU node"
        else:
            row.update(measure(v, preset, device, warmup, steps))
        rows.append(row)
        done = "skipped" if "skipped" in row else f"{row['median_s']:.4f} s"
        print(f"  {row['variant']:<32} {done}", flush=True)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    if rows:
        print(f"search step, preset {preset}, device {card}, torch {torch.__version__}")
        print(f"{'variant':<32} {'s/step':>8} {'x ' + BASELINE:>22} {'peak MiB':>9}")
        base = next(r for r in rows if r["variant"] == BASELINE)["median_s"]
    for r in rows:
        if "skipped" in r:
            print(f"{r['variant']:<32} skipped: {r['skipped']}")
            continue
        r["ratio"] = r["median_s"] / base
        peak = f"{r['peak_mib']:9.0f}" if r["peak_mib"] is not None else f"{'-':>9}"
        print(f"{r['variant']:<32} {r['median_s']:8.4f} {r['ratio']:22.2f} {peak}")
    feed = None
    if not args.skip_loader:
        with tempfile.TemporaryDirectory(prefix="raynas-gpu-feed-") as home:
            feed = loader_keeps_up(args.dry, device, Path(home), warmup, steps)
        print(f"{'batch':>6} {'stream loader img/s':>20} {'step demand img/s':>18} {'loader / demand':>16}")
        for r in feed:
            print(f"{r['batch_size']:>6} {r['loader_img_s']:>20,.0f} {r['step_img_s']:>18,.0f} "
                  f"{r['loader_over_step']:>16.2f}")
    race = None
    if not args.skip_race:
        with tempfile.TemporaryDirectory(prefix="raynas-gpu-bench-") as home:
            race = race_sharing_the_device(args.dry, Path(home))
        print(f"race of 2 trials at {race['gpus_per_trial']:g} GPU each: {race['wall_s']:.1f} s wall, "
              f"{race['wall_over_trials']:.2f}x the sum of its trials' times")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"date": dt.date.today().isoformat(), "device": card, "preset": preset, "dry": args.dry,
                       "torch": torch.__version__, "steps": steps, "warmup": warmup, "rows": rows, "loader": feed,
                       "race": race},
                      fh, indent=2)


if __name__ == "__main__":
    main()
