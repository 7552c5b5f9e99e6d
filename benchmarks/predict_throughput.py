"""Images per second of ``raynas predict`` (Ray Data batch inference) and of a plain PyTorch loop, in one run.

    python benchmarks/predict_throughput.py [--images 4000] [--inputs folder,parquet] [--concurrency N]
                                            [--out result.json]

Both sides use the same model, the same images, the same preprocessing (``Preprocess``:
``stored_uint8`` per file, ``batch`` per batch) and the same batch size (256), and both compute
the class and the top-k probabilities. Inputs, with ``--images`` images each (taken from a
built-in dataset, repeated when it has fewer):

* ``folder``: PNG files, decoded one by one (the loop decodes in its own process; raynas in Ray tasks);
* ``parquet``: one Parquet file with a fixed-shape uint8 tensor ``image`` column (no decoding;
  the loop reads it with pyarrow 256 rows at a time).

raynas is timed around :func:`raynas.model.predict.predict`, so its number includes what a user
waits for: checking and loading the model, starting the actor pool, and writing the output
Parquet file (the loop writes nothing). Its *marginal* rate leaves that fixed cost out: it is
run once more on the first batch alone, and (images - batch) / (time - time of the batch)
is the rate at which images beyond the first batch go through. Starting Ray is timed
separately and excluded. The
model is a discrete network trained for a single step (throughput does not depend on its
accuracy); making it, the images and the Parquet file is not timed. The loop runs first, so
Ray's background processes do not disturb it; it uses a torch thread per CPU (``--threads``),
each raynas actor one per CPU of its share of the cluster.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from _scratch import scratch_space, start_ray  # noqa: E402
from raynas.data import DatasetStore  # noqa: E402
from raynas.data.format import tensor_column, tensor_column_to_numpy  # noqa: E402
from raynas.threads import available_cpus, set_threads  # noqa: E402

GENOTYPE = {"nodes": 4,
            "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
                       ["dil_conv_3x3", 2], ["skip_connect", 0], ["sep_conv_3x3", 3], ["max_pool_3x3", 1]],
            "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 0],
                       ["avg_pool_3x3", 1], ["skip_connect", 2], ["sep_conv_3x3", 0], ["dil_conv_3x3", 3]]}


def make_model(store: DatasetStore, dataset: str, run: Path, channels: int, cells: int, image_size: int) -> Path:
    """A run directory with a model trained for one step: its cost per image is a real network's."""
    from raynas.search.retrain import RetrainConfig, retrain
    from raynas.space.genotype import Genotype

    run.mkdir(parents=True)
    genotype = Genotype.from_json(GENOTYPE)
    genotype.save(run / "genotype.json")
    config = RetrainConfig(dataset=dataset, epochs=1, max_steps_per_epoch=1, channels=channels, cells=cells,
                           image_size=image_size)
    retrain(genotype, config, store, run, verbose=False)
    return run


def sample(store: DatasetStore, dataset: str, count: int) -> np.ndarray:
    """``count`` stored images (uint8 N x C x H x W), the dataset repeated when it is smaller."""
    images = store.load(dataset).images
    return images[np.arange(count) % len(images)]


def write_input(kind: str, images: np.ndarray, path: Path) -> Path:
    """A folder of PNG files (named in input order) or a Parquet file of uint8 tensors."""
    if kind == "parquet":
        path = path.with_suffix(".parquet")
        pq.write_table(pa.table({"image": tensor_column(images)}), path)
        return path
    path.mkdir(parents=True)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[0]) if img.shape[0] == 1 else Image.fromarray(img.transpose(1, 2, 0))
        pil.save(path / f"{i:06d}.png")
    return path


def classify(network, x: torch.Tensor, top_k: int) -> np.ndarray:
    """What each raynas actor computes per batch: argmax and the top-k probabilities."""
    logits = network(x).float()
    logits.softmax(1).topk(top_k, dim=1)
    return logits.argmax(1).numpy()


def torch_loop(run: Path, inputs: str, source, batch_size: int, top_k: int) -> tuple[float, np.ndarray]:
    """The plain PyTorch baseline in this process; returns seconds and the predicted classes."""
    from raynas.model.load import load_card_and_network

    t0 = time.perf_counter()
    network, card = load_card_and_network(run)
    pre = card.preprocessing()
    k = min(top_k, card.num_classes)
    out = []
    with torch.inference_mode():
        if inputs == "folder":
            for start in range(0, len(source), batch_size):
                batch = np.stack([pre.stored_uint8(p) for p in source[start:start + batch_size]])
                out.append(classify(network, pre.batch(torch.from_numpy(batch)), k))
        else:
            shape = (pre.stored_channels, pre.stored_size, pre.stored_size)
            for record in pq.ParquetFile(source).iter_batches(batch_size=batch_size, columns=["image"]):
                batch = tensor_column_to_numpy(record.column("image"), shape)
                out.append(classify(network, pre.batch(torch.from_numpy(batch)), k))
    return time.perf_counter() - t0, np.concatenate(out)


def raynas_predict(run: Path, source: Path, out: Path, batch_size: int, concurrency: int | None,
                   top_k: int) -> tuple[float, dict, np.ndarray]:
    """``raynas predict`` through its library function; returns seconds, its answer, the classes in input order."""
    from raynas.model.predict import predict

    t0 = time.perf_counter()
    answer = predict(run, source, out, batch_size=batch_size, concurrency=concurrency, top_k=top_k)
    seconds = time.perf_counter() - t0
    table = pq.read_table(out)
    order = table.column("path" if "path" in table.column_names else "row").to_numpy(zero_copy_only=False)
    classes = table.column("class_index").to_numpy()[np.argsort(order, kind="stable")]
    return seconds, answer, classes



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--home", default=None, help="raynas home (default: a temporary directory, removed afterwards)")
    p.add_argument("--dataset", default="mnist5k", help="built-in dataset the images come from (default mnist5k)")
    p.add_argument("--images", type=int, default=4000, help="images per input (default 4000)")
    p.add_argument("--inputs", default="folder,parquet", help="which inputs to time (default folder,parquet)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=None, help="raynas inference actors (default: its own)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--channels", type=int, default=8, help="the network's initial channels (default 8)")
    p.add_argument("--cells", type=int, default=5, help="the network's cells (default 5)")
    p.add_argument("--image-size", type=int, default=28, help="the network's input side (default 28)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the loop (default: all CPUs)")
    p.add_argument("--out", default=None, help="also write the numbers as JSON to this file")
    args = p.parse_args()
    inputs = [s.strip() for s in args.inputs.split(",") if s.strip()]
    if not inputs or set(inputs) - {"folder", "parquet"} or args.images < 1:
        p.error("--inputs takes folder and/or parquet, --images at least 1")
    load_before = os.getloadavg()[0]

    results: dict[str, dict] = {}
    with scratch_space("raynas-predict-bench-") as scratch:
        store = DatasetStore(Path(args.home) if args.home else scratch / "home")
        info = store.info(args.dataset)  # builds a built-in on first use; not timed
        run = make_model(store, args.dataset, scratch / "run", args.channels, args.cells, args.image_size)
        images = sample(store, args.dataset, args.images)
        first = images[:args.batch_size]
        sources = {kind: write_input(kind, images, scratch / f"{kind}-images") for kind in inputs}
        small = {kind: write_input(kind, first, scratch / f"{kind}-first-batch") for kind in inputs}
        set_threads(args.threads or available_cpus())  # training the model may have lowered them
        for kind in inputs:
            files = sorted(sources[kind].iterdir()) if kind == "folder" else sources[kind]
            seconds, classes = torch_loop(run, kind, files, args.batch_size, args.top_k)
            results[kind] = {"torch_s": seconds, "torch_img_s": len(images) / seconds, "torch_classes": classes}
        ray_start = start_ray()
        for kind in inputs:
            seconds, answer, classes = raynas_predict(run, sources[kind], scratch / f"{kind}.predictions.parquet",
                                                      args.batch_size, args.concurrency, args.top_k)
            first_s, _, _ = raynas_predict(run, small[kind], scratch / f"{kind}.first.parquet", args.batch_size,
                                           args.concurrency, args.top_k)
            r = results[kind]
            extra = len(images) - len(first)
            r.update(raynas_s=seconds, raynas_img_s=answer["predicted"] / seconds, raynas_first_batch_s=first_s,
                     raynas_marginal_img_s=extra / (seconds - first_s) if extra and seconds > first_s else None,
                     raynas_pipeline_s=answer["seconds"], concurrency=answer["concurrency"],
                     threads_per_actor=answer["threads_per_actor"],
                     identical=bool(np.array_equal(classes, r.pop("torch_classes"))))

    import ray

    env = {"date": dt.date.today().isoformat(), "dataset": args.dataset, "images": args.images,
           "stored_shape": list(info.shape), "image_size": args.image_size, "channels": args.channels,
           "cells": args.cells, "batch_size": args.batch_size, "top_k": args.top_k, "torch": torch.__version__,
           "ray": ray.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "load_average_1min_before": round(load_before, 2),
           "ray_start_s": ray_start}
    print(f"predict throughput, {env['date']}: {args.images} images of {args.dataset} (stored "
          f"{'x'.join(map(str, info.shape))}), network {args.channels} channels x {args.cells} cells at "
          f"{args.image_size}x{args.image_size}, batch {args.batch_size}, top-{args.top_k}")
    print(f"torch {env['torch']}, ray {env['ray']}, python {env['python']}, {env['cpu_count']} CPUs, "
          f"{env['torch_threads']} torch threads in the loop, 1-minute load average at start {load_before:.2f}")
    print(f"\n{'input':<8} {'method':<40} {'seconds':>8} {'img/s':>9} {'marginal img/s':>15}")
    for kind, r in results.items():
        print(f"{kind:<8} {'plain PyTorch loop':<40} {r['torch_s']:>8.2f} {r['torch_img_s']:>9,.0f}")
        label = f"raynas predict ({r['concurrency']} actor x {r['threads_per_actor']} threads)"
        marginal = r["raynas_marginal_img_s"]
        print(f"{kind:<8} {label:<40} {r['raynas_s']:>8.2f} {r['raynas_img_s']:>9,.0f} "
              f"{'-' if marginal is None else f'{marginal:,.0f}':>15}   (first batch alone: "
              f"{r['raynas_first_batch_s']:.2f} s)")
    print(f"(starting Ray took {ray_start:.1f} s, not included above)\n")
    ratios = {}
    for kind, r in results.items():
        ratios[f"raynas / torch, {kind}"] = r["raynas_img_s"] / r["torch_img_s"]
        if r["raynas_marginal_img_s"]:
            ratios[f"raynas marginal / torch, {kind}"] = r["raynas_marginal_img_s"] / r["torch_img_s"]
    for name, v in ratios.items():
        print(f"{name:<35} {v:>6.2f}x")
    for kind, r in results.items():
        print(f"predictions identical to the loop's ({kind}): {'yes' if r['identical'] else 'NO'}")

    if args.out:
        with open(args.out, "w") as fh:
            json.dump({**env, "results": results, "ratios": ratios}, fh, indent=2)


if __name__ == "__main__":
    main()
