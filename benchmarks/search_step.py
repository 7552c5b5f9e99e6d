"""Time per search step of the fused and the reference supernet cell, measured in one run.

A search step is what the engine does per batch: the algorithm's architecture step (val
batch) plus the weight step (train batch), through the same code the search loop uses.
Both cells compute the same function (tests check outputs and gradients); the reference is
the straightforward per-edge implementation, measured in both memory layouts.

    python benchmarks/search_step.py [--preset cpu] [--algo darts] [--rounds 12] [--out result.json]

Timings are interleaved across implementations, one step each per round, and the median is
reported; peak memory is measured per implementation in a fresh subprocess (peak RSS growth
on CPU, peak allocated memory on CUDA).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from raynas.search.algorithms import StepContext, create_algorithm
from raynas.search.algorithms.base import frozen
from raynas.search.config import SearchConfig
from raynas.space.config import PRESETS
from raynas.space.supernet import create_supernet

VARIANTS = {"reference-nchw": ("reference", False), "reference-nhwc": ("reference", True),
            "fused-nchw": ("fused", False), "fused-nhwc": ("fused", True)}


class Stepper:
    """One supernet with its optimisers, stepping on fixed batches."""

    def __init__(self, variant: str, args, device: torch.device):
        impl, channels_last = VARIANTS[variant]
        self.config = SearchConfig(dataset="synthetic", algo=args.algo, preset=args.preset)
        self.algorithm = create_algorithm(self.config)
        preset = PRESETS.get(args.preset)
        space = self.algorithm.configure_space(preset.space(in_channels=args.in_channels, num_classes=10))
        self.model = create_supernet(space, impl, seed=0, channels_last=channels_last).to(device)
        self.w_opt = torch.optim.SGD(self.model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
        self.a_opt = torch.optim.Adam(self.model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999))
        g = torch.Generator().manual_seed(0)
        shape = (preset.batch_size, args.in_channels, preset.image_size, preset.image_size)
        self.train = (torch.randn(shape, generator=g).to(device), torch.randint(0, 10, shape[:1], generator=g).to(device))
        self.val = (torch.randn(shape, generator=g).to(device), torch.randint(0, 10, shape[:1], generator=g).to(device))
        self.device = device

    def step(self) -> float:
        t0 = time.perf_counter()
        ctx = StepContext(self.model, self.w_opt, self.a_opt, self.config, 0.025)
        self.algorithm.arch_step(ctx, self.train, self.val)
        self.w_opt.zero_grad(set_to_none=True)
        with frozen(self.model.arch_parameters()):
            F.cross_entropy(self.model(self.train[0]), self.train[1]).backward()
        torch.nn.utils.clip_grad_norm_(self.model.weight_parameters(), 5.0)
        self.w_opt.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def measure_memory(variant: str, args) -> float:
    """Peak memory (MiB) of a few steps, in a fresh process."""
    cmd = [sys.executable, __file__, "--memory-probe", variant, "--preset", args.preset, "--algo", args.algo,
           "--in-channels", str(args.in_channels), "--threads", str(args.threads)]
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def memory_probe(variant: str, args, device: torch.device) -> None:
    """Peak memory growth during steps: CUDA allocator peak, or Linux RSS high-water mark."""
    stepper = Stepper(variant, args, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the RSS high-water mark to the current RSS
        base = _proc_status_kib("VmRSS") * 1024
    for _ in range(3):
        stepper.step()
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _proc_status_kib("VmHWM") * 1024 - base
    print(peak / 2 ** 20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--algo", default="darts")
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--rounds", type=int, default=12, help="rounds; each times one step of every variant")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if args.memory_probe:
        memory_probe(args.memory_probe, args, device)
        return

    variants = args.variants.split(",")
    steppers = {v: Stepper(v, args, device) for v in variants}
    for s in steppers.values():  # warm-up
        s.step(), s.step()
    times = {v: [] for v in variants}
    for _ in range(args.rounds):  # interleaved, so slow phases of a noisy machine hit every variant
        for v, s in steppers.items():
            times[v].append(s.step())
    median = {v: statistics.median(t) for v, t in times.items()}
    memory = {v: measure_memory(v, args) for v in variants}

    preset = PRESETS.get(args.preset)
    print(f"search step ({args.algo}, arch + weight step), preset '{args.preset}': {preset.channels} channels, "
          f"{preset.cells} cells, {preset.nodes} nodes, {preset.image_size}x{preset.image_size}, batch "
          f"{preset.batch_size}; device {device}, {args.threads} threads; torch {torch.__version__}")
    print(f"{'variant':<16} {'median s/step':>14} {'peak MiB':>10}")
    for v in variants:
        print(f"{v:<16} {median[v]:>14.3f} {memory[v]:>10.0f}")
    ratios = {}
    for ref in ("reference-nchw", "reference-nhwc"):
        if ref in median and "fused-nhwc" in median:
            ratios[f"{ref} / fused-nhwc"] = median[ref] / median["fused-nhwc"]
    for k, r in ratios.items():
        print(f"speed-up {k}: {r:.2f}x")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"date": dt.date.today().isoformat(), "preset": args.preset, "algo": args.algo,
                       "device": str(device), "threads": args.threads, "cpu_count": os.cpu_count(),
                       "torch": torch.__version__, "python": platform.python_version(),
                       "median_step_s": median, "peak_mib": memory, "ratios": ratios}, fh, indent=2)


if __name__ == "__main__":
    main()
