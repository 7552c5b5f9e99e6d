"""Images per second of the raynas loaders and of torchvision ImageFolder + DataLoader, in one run.

    python benchmarks/loader_throughput.py [--dataset mnist5k] [--epochs 3] [--workers 0,2] [--out result.json]

What is measured (all on the train split of one dataset, same batch size and output size):

* raynas ``memory`` backend with augmentation: *cold* = ``create_loaders`` (Parquet read,
  decode, resize, normalisation statistics) plus the first epoch; *warm* = each later epoch.
* raynas ``ray`` backend (Ray Data): the first epoch is a warm-up (reported as cold), then
  warm epochs. The Ray start itself is timed separately and excluded from both numbers.
* torchvision ``ImageFolder`` + ``torch.utils.data.DataLoader`` over the same train images
  written out as PNG files (one folder per class), with the equivalent transform pipeline
  (Grayscale/ToTensor/Resize, RandomCrop with zero padding, Normalize with the same
  statistics), ``shuffle=True``, once per ``--workers`` value. Cold = building the
  ``ImageFolder`` plus the first epoch; warm = each later epoch. Workers are started per
  epoch (the DataLoader default, ``persistent_workers=False``).

Warm numbers are the median over ``--epochs`` epochs. Building a built-in dataset on first
use and writing the PNG tree are not timed. Batches are only counted, not used, so the
numbers are the loaders' own ceiling, not a training throughput.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from raynas.data import DatasetStore  # noqa: E402
from raynas.data.loader import LoaderConfig, create_loaders  # noqa: E402


def run_epoch(loader) -> tuple[int, float]:
    """Images delivered by one pass over ``loader`` and the seconds it took."""
    t0 = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    return n, time.perf_counter() - t0


def epochs(loader, count: int) -> list[tuple[int, float]]:
    return [run_epoch(loader) for _ in range(count)]


def median_rate(runs: list[tuple[int, float]]) -> float:
    return statistics.median(n / s for n, s in runs)


def bench_memory(dataset: str, store: DatasetStore, config: LoaderConfig, count: int) -> dict:
    t0 = time.perf_counter()
    loader = create_loaders(dataset, config, ("train",), store)["train"]
    setup = time.perf_counter() - t0
    n, first = run_epoch(loader)
    warm = epochs(loader, count)
    return {"setup_s": setup, "first_epoch_s": first, "cold_img_s": n / (setup + first),
            "warm_epoch_s": [s for _, s in warm], "warm_img_s": median_rate(warm), "images": n,
            "normalize": loader.normalize}


def bench_ray(dataset: str, store: DatasetStore, config: LoaderConfig, count: int) -> dict:
    import ray
    import ray.data

    from raynas.ray_session import ensure_ray

    t0 = time.perf_counter()
    ensure_ray()
    ray_start = time.perf_counter() - t0
    ray.data.DataContext.get_current().enable_progress_bars = False  # keep the output readable
    t0 = time.perf_counter()
    loader = create_loaders(dataset, config, ("train",), store)["train"]
    setup = time.perf_counter() - t0
    n, first = run_epoch(loader)
    warm = epochs(loader, count)
    return {"ray_start_s": ray_start, "setup_s": setup, "first_epoch_s": first,
            "cold_img_s": n / (setup + first), "warm_epoch_s": [s for _, s in warm],
            "warm_img_s": median_rate(warm), "images": n}


def write_image_folder(store: DatasetStore, dataset: str, root: Path) -> int:
    """The train split as PNG files, one folder per class; returns the number of files."""
    ds = store.load(dataset)
    images, labels = ds.split("train")
    for name in ds.info.class_names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(images, labels)):
        pil = Image.fromarray(img[0]) if img.shape[0] == 1 else Image.fromarray(img.transpose(1, 2, 0))
        pil.save(root / ds.info.class_names[label] / f"{i:06d}.png")
    return len(images)


def bench_imagefolder(root: Path, config: LoaderConfig, normalize, workers: int, count: int) -> dict:
    size = config.image_size
    transform = T.Compose([
        T.Grayscale(num_output_channels=config.channels),
        T.ToTensor(),
        T.Resize((size, size), antialias=True),
        T.RandomCrop(size, padding=size // 8),
        T.Normalize(normalize.mean, normalize.std),
    ])
    t0 = time.perf_counter()
    folder = torchvision.datasets.ImageFolder(str(root), transform=transform)
    loader = torch.utils.data.DataLoader(folder, batch_size=config.batch_size, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(config.seed))
    setup = time.perf_counter() - t0
    n, first = run_epoch(loader)
    warm = epochs(loader, count)
    return {"workers": workers, "setup_s": setup, "first_epoch_s": first, "cold_img_s": n / (setup + first),
            "warm_epoch_s": [s for _, s in warm], "warm_img_s": median_rate(warm), "images": n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--home", default=None, help="raynas home (default: a temporary directory, removed afterwards)")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--epochs", type=int, default=3, help="timed warm epochs per loader (default 3)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--workers", default="0,2", help="DataLoader worker counts for ImageFolder (default 0,2)")
    p.add_argument("--out", default=None, help="also write the numbers as JSON to this file")
    args = p.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    load_before = os.getloadavg()[0]

    scratch = Path(tempfile.mkdtemp(prefix="raynas-loader-bench-"))
    try:
        home = Path(args.home) if args.home else scratch / "home"
        store = DatasetStore(home)
        info = store.info(args.dataset)  # builds a built-in on first use; not timed
        config = LoaderConfig(image_size=args.image_size, channels=1, batch_size=args.batch_size,
                              augment=True, backend="memory")

        memory = bench_memory(args.dataset, store, config, args.epochs)
        normalize = memory.pop("normalize")
        folder_root = scratch / "imagefolder"
        n_files = write_image_folder(store, args.dataset, folder_root)
        folders = [bench_imagefolder(folder_root, config, normalize, w, args.epochs) for w in workers]
        ray_result = bench_ray(args.dataset, store, LoaderConfig(**dict(config.to_json(), backend="ray")),
                               args.epochs)
    finally:
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    import ray

    env = {"date": dt.date.today().isoformat(), "dataset": args.dataset, "train_images": memory["images"],
           "png_files": n_files, "stored_shape": list(info.shape), "image_size": args.image_size,
           "batch_size": args.batch_size, "channels": 1, "augment": True, "warm_epochs": args.epochs,
           "torch": torch.__version__, "torchvision": torchvision.__version__, "ray": ray.__version__,
           "python": platform.python_version(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(),
           "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    print(f"loader throughput, {env['date']}: dataset {args.dataset}, train split {memory['images']} images "
          f"stored {'x'.join(map(str, info.shape))}, served at 1x{args.image_size}x{args.image_size}, "
          f"batch {args.batch_size}, augment on, {args.epochs} warm epochs (median)")
    print(f"torch {env['torch']}, torchvision {env['torchvision']}, ray {env['ray']}, python {env['python']}, "
          f"{env['cpu_count']} CPUs, {env['torch_threads']} torch threads")
    busy = env["load_average_1min"][0]
    print(f"1-minute load average before/after: {env['load_average_1min'][0]:.2f}/{env['load_average_1min'][1]:.2f}"
          + (" -- other processes were busy at the start; rerun on a quiet machine" if busy > 0.5 * (os.cpu_count() or 1) else ""))

    rows = [("raynas memory", memory)]
    rows += [(f"ImageFolder workers={f['workers']}", f) for f in folders]
    rows += [("raynas ray", ray_result)]
    print(f"\n{'loader':<24} {'setup s':>8} {'1st epoch s':>12} {'cold img/s':>11} {'warm img/s':>11}")
    for name, r in rows:
        print(f"{name:<24} {r['setup_s']:>8.2f} {r['first_epoch_s']:>12.3f} {r['cold_img_s']:>11,.0f} "
              f"{r['warm_img_s']:>11,.0f}")
    print(f"(Ray start {ray_result['ray_start_s']:.1f} s, excluded; ray cold = setup + first epoch after start)")

    ratios = {}
    for f in folders:
        w = f["workers"]
        ratios[f"memory / imagefolder-w{w} (warm)"] = memory["warm_img_s"] / f["warm_img_s"]
        ratios[f"memory / imagefolder-w{w} (cold)"] = memory["cold_img_s"] / f["cold_img_s"]
        ratios[f"ray / imagefolder-w{w} (warm)"] = ray_result["warm_img_s"] / f["warm_img_s"]
    print()
    for k, v in ratios.items():
        print(f"{k:<36} {v:>8.2f}x")

    if args.out:
        with open(args.out, "w") as fh:
            json.dump({**env, "memory": memory, "ray": ray_result, "imagefolder": folders, "ratios": ratios},
                      fh, indent=2)


if __name__ == "__main__":
    main()
