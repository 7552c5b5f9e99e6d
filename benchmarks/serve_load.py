"""Requests per second and latency of ``raynas serve`` with 1 and then 2 replicas, in one run.

    python benchmarks/serve_load.py [--run RUN_DIR] [--replicas 1,2] [--concurrency 8]
                                    [--requests 600] [--seconds 30] [--out result.json]

The server is started by :func:`raynas.model.serve.start_server` on 127.0.0.1 (a free port),
on the model of ``--run``, or, without one, on a tiny model trained first for a few seconds on
the built-in glyph-digits (in a temporary home, removed afterwards). The load is
``--concurrency`` threads, each with one keep-alive connection, sending single-image POSTs
(PNG, at the model's stored size) until ``--requests`` were sent or ``--seconds`` passed, per
replica count, after a short unmeasured warm-up. Only 127.0.0.1 is ever contacted.

The load generator shares the machine with the server (proxy, replicas, Ray), so on a small
machine its numbers are the whole system's, not the replicas' alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import io
import json
import logging
import os
import platform
import socket
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from _scratch import scratch_space  # noqa: E402
from raynas.model.artifact import model_dir, read_card  # noqa: E402

WARMUP_REQUESTS = 32
GENOTYPE = {"nodes": 4,  # the tests' small genotype: a few milliseconds per image on a CPU
            "normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["skip_connect", 0], ["max_pool_3x3", 2],
                       ["sep_conv_3x3", 1], ["avg_pool_3x3", 3], ["dil_conv_3x3", 0], ["sep_conv_3x3", 4]],
            "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 0],
                       ["avg_pool_3x3", 1], ["skip_connect", 2], ["sep_conv_3x3", 0], ["dil_conv_3x3", 3]]}


def train_tiny_model(scratch: Path) -> Path:
    """A run directory with a model retrained for one short epoch: enough to serve."""
    from raynas.data import DatasetStore
    from raynas.search.retrain import RetrainConfig, retrain
    from raynas.space.genotype import Genotype

    store = DatasetStore(scratch / "home")
    store.ensure_builtin("glyph-digits")
    run = scratch / "run"
    run.mkdir()
    genotype = Genotype.from_json(GENOTYPE)
    genotype.save(run / "genotype.json")
    config = RetrainConfig(dataset="glyph-digits", epochs=1, channels=6, cells=3, image_size=16, threads=1)
    retrain(genotype, config, store, run, verbose=False)
    return run


def sample_images(run: Path, count: int = 8) -> list[bytes]:
    """Random PNGs of the model's stored size and channels (decoding costs what a real one costs)."""
    pre = read_card(model_dir(run)).preprocessing()
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        shape = (pre.stored_size, pre.stored_size) + (() if pre.stored_channels == 1 else (3,))
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, "PNG")
        images.append(buf.getvalue())
    return images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port: int, images: list[bytes], concurrency: int, requests: int, seconds: float) -> dict:
    """Send up to ``requests`` POSTs from ``concurrency`` threads, for at most ``seconds``."""
    lock = threading.Lock()
    sent = [0]
    latencies: list[float] = []
    failures: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if sent[0] >= requests:
                        return
                    i = sent[0]
                    sent[0] += 1
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/predict", body=images[(i + k) % len(images)],
                                 headers={"Content-Type": "image/png"})
                    answer = conn.getresponse()
                    answer.read()
                    outcome = None if answer.status == 200 else f"HTTP {answer.status}"
                except (OSError, http.client.HTTPException) as exc:
                    outcome = type(exc).__name__
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                elapsed = time.perf_counter() - t0
                with lock:
                    if outcome is None:
                        latencies.append(elapsed)
                    else:
                        failures[outcome] = failures.get(outcome, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.asarray(latencies) * 1000
    return {"ok": len(latencies), "failed": failures, "wall_s": round(wall, 3),
            "requests_per_s": round(len(latencies) / wall, 1) if wall else None,
            "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None}


def served(port: int) -> dict:
    """One replica's counters of predictions and forward passes (``/healthz``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/healthz")
        return json.loads(conn.getresponse().read())["served"]
    finally:
        conn.close()


def measure(run: Path, images: list[bytes], replicas: int, cpus: float, args: argparse.Namespace) -> dict:
    from raynas.model.serve import start_server, stop_server

    port = free_port()
    t0 = time.perf_counter()
    start_server(run, port=port, replicas=replicas, cpus_per_replica=cpus)
    start_s = time.perf_counter() - t0
    try:
        load(port, images, min(args.concurrency, WARMUP_REQUESTS), WARMUP_REQUESTS, args.seconds)
        before = served(port)
        result = load(port, images, args.concurrency, args.requests, args.seconds)
        after = served(port)
    finally:
        stop_server()
    result["replicas"], result["start_s"] = replicas, round(start_s, 1)
    if replicas == 1:  # with more, /healthz answers from one replica of several
        batches = after["batches"] - before["batches"]
        result["mean_batch"] = round((after["predictions"] - before["predictions"]) / batches, 2) if batches else None
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default=None, help="run or model directory to serve (default: train a tiny model first)")
    p.add_argument("--replicas", default="1,2", help="replica counts to measure, in order (default 1,2)")
    p.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    p.add_argument("--requests", type=int, default=600, help="measured requests per replica count (default 600)")
    p.add_argument("--seconds", type=float, default=30, help="at most this long per replica count (default 30)")
    p.add_argument("--out", default=None, help="also write the numbers as JSON to this file")
    args = p.parse_args()
    import raynas.model.serve  # noqa: F401 - importing Ray Serve sets its logger's level; quieten it after

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # keep its progress lines out of the table
    counts = [int(r) for r in args.replicas.split(",") if r.strip()]
    load_before = os.getloadavg()[0]

    with scratch_space("raynas-serve-bench-") as scratch:
        t0 = time.perf_counter()
        run = Path(args.run) if args.run else train_tiny_model(scratch)
        train_s = None if args.run else round(time.perf_counter() - t0, 1)
        images = sample_images(run)

        import ray

        from raynas.ray_session import ensure_ray

        ensure_ray()
        cpus = min(1.0, ray.cluster_resources().get("CPU", 1) / max(counts))
        results = [measure(run, images, n, cpus, args) for n in counts]

    import ray
    import torch

    card = read_card(model_dir(run)) if args.run else None
    env = {"date": dt.date.today().isoformat(), "model": args.run or "tiny glyph-digits model (trained here)",
           "architecture": card.architecture if card else "discrete", "train_s": train_s,
           "image_bytes": round(float(np.mean([len(i) for i in images]))), "concurrency": args.concurrency,
           "requests": args.requests, "seconds": args.seconds, "cpus_per_replica": cpus,
           "ray": ray.__version__, "torch": torch.__version__, "python": platform.python_version(),
           "cpu_count": os.cpu_count(), "load_average_1min_before": round(load_before, 2)}
    print(f"raynas serve load, {env['date']}: {env['model']}, single-image POSTs of ~{env['image_bytes']} bytes "
          f"from {args.concurrency} threads (keep-alive), up to {args.requests} requests or {args.seconds:g} s "
          f"per row, {cpus:g} CPU per replica")
    print(f"ray {env['ray']}, torch {env['torch']}, python {env['python']}, {env['cpu_count']} CPUs, "
          f"1-minute load average at start {load_before:.2f}")
    print(f"\n{'replicas':>8} {'ok':>6} {'failed':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean batch':>10} "
          f"{'start s':>8}")
    for r in results:
        print(f"{r['replicas']:>8} {r['ok']:>6} {sum(r['failed'].values()):>6} {r['requests_per_s'] or 0:>8.1f} "
              f"{r['p50_ms'] or 0:>8.1f} {r['p99_ms'] or 0:>8.1f} {r.get('mean_batch') or '-':>10} "
              f"{r['start_s']:>8.1f}")
    for r in results:
        if r["failed"]:
            print(f"failures with {r['replicas']} replica(s): {r['failed']}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({**env, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
