"""Images per second of the raynas loaders and of torchvision ImageFolder + DataLoader, in one run.

    python benchmarks/loader_throughput.py [--dataset mnist5k] [--epochs 3] [--workers 0,2] [--out result.json]
    python benchmarks/loader_throughput.py --generate 20000 --side 64   # RGB, many row groups

What is measured (all on the train split of one dataset, same batch size and output size):

* raynas ``memory`` backend with augmentation: *cold* = ``create_loaders`` (Parquet read,
  decode, resize, normalisation statistics) plus the first epoch; *warm* = each later epoch.
* raynas ``stream`` backend (row groups read and decoded ahead by ``--stream-workers``
  threads, shuffled in a window): *cold* = ``create_loaders`` plus the first epoch.
* raynas ``ray`` backend (Ray Data): *cold* = ``create_loaders`` plus the first epoch, then
  warm epochs. Starting Ray is timed separately and excluded from both numbers.
* torchvision ``ImageFolder`` + ``torch.utils.data.DataLoader`` over the same train images
  written out as PNG files (one folder per class), with the equivalent transform pipeline
  (Grayscale, ToTensor, Resize, Normalize with the same statistics, RandomCrop with zero
  padding -- zero after normalising, as raynas pads), ``shuffle=True``, once per
  ``--workers`` value. *Cold* = building the ``ImageFolder`` plus the first epoch (worker
  start included); *warm* = each later epoch, with ``persistent_workers`` so that worker
  start-up is not paid again (the baseline's best case).

``--generate N`` measures a generated dataset instead: N RGB images of ``--side`` pixels
(smooth random colour fields, a class each), imported in row groups as an import writes them.

Warm numbers are the median over ``--epochs`` epochs. Building a built-in dataset on first
use and writing the PNG tree are not timed. Batches are only counted, not used, so the
numbers are the loaders' own ceiling, not a training throughput. Ray is started last, so its
background processes do not disturb the other measurements.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from _scratch import scratch_space, start_ray  # noqa: E402
from raynas.data import DatasetStore  # noqa: E402
from raynas.data.loader import LoaderConfig, create_loaders  # noqa: E402


def cpu_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine so far (Linux), to see whether others were running."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_epoch(loader) -> tuple[int, float]:
    """Images delivered by one pass over ``loader`` and the seconds it took."""
    t0 = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    return n, time.perf_counter() - t0


def measure(make_loader, count: int) -> dict:
    """Time ``make_loader()`` + the first epoch (cold), then ``count`` more epochs (warm).

    ``others_cpu_s``: CPU seconds the rest of the machine used meanwhile (only meaningful for
    in-process loaders; DataLoader workers and Ray processes count as "others").
    """
    busy0, own0 = cpu_busy_s(), own_cpu_s()
    t0 = time.perf_counter()
    loader = make_loader()
    setup = time.perf_counter() - t0
    n, first = run_epoch(loader)
    warm = [run_epoch(loader) for _ in range(count)]
    busy1, own1 = cpu_busy_s(), own_cpu_s()
    others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (own1 - own0))
    return {"others_cpu_s": others, "wall_s": time.perf_counter() - t0, "images": n, "setup_s": setup, "first_epoch_s": first, "cold_img_s": n / (setup + first),
            "warm_epoch_s": [s for _, s in warm], "warm_img_s": statistics.median(m / s for m, s in warm),
            "loader": loader}


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


def generate_dataset(store: DatasetStore, count: int, side: int, name: str = "generated") -> None:
    """``count`` smooth random RGB images of ``side`` pixels in 10 classes, stored as an import stores them."""
    from raynas.data.format import row_group_rows
    from raynas.data.splits import stratified_split
    from raynas.data.writer import write_streamed

    rng = np.random.default_rng(0)
    labels = np.arange(count) % 10
    splits = stratified_split(labels, seed=0)
    rows = row_group_rows(3 * side * side)

    def chunks():
        for start in range(0, count, rows):
            k = min(rows, count - start)
            coarse = rng.integers(0, 256, (k, 3, 8, 8)).astype(np.float32)
            fine = np.kron(coarse, np.ones((1, 1, side // 8, side // 8), np.float32))
            yield np.clip(fine + rng.normal(0, 8, fine.shape), 0, 255).astype(np.uint8)

    write_streamed(store.path(name), chunks(), name=name, class_names=[f"c{k}" for k in range(10)], labels=labels,
                   splits=splits, shape=(3, side, side), domain="generated", provenance={"generated": count})


def imagefolder_loader(root: Path, config: LoaderConfig, normalize, workers: int):
    size = config.image_size
    transform = T.Compose([
        T.Grayscale(num_output_channels=config.channels),
        T.ToTensor(),
        T.Resize((size, size), antialias=True),
        T.Normalize(normalize.mean, normalize.std),
        T.RandomCrop(size, padding=size // 8),
    ])
    folder = torchvision.datasets.ImageFolder(str(root), transform=transform)
    return torch.utils.data.DataLoader(folder, batch_size=config.batch_size, shuffle=True, num_workers=workers,
                                       persistent_workers=workers > 0,
                                       generator=torch.Generator().manual_seed(config.seed))



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--home", default=None, help="raynas home (default: a temporary directory, removed afterwards)")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--epochs", type=int, default=3, help="timed warm epochs per loader (default 3)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--workers", default="0,2", help="DataLoader worker counts for ImageFolder (default 0,2)")
    p.add_argument("--generate", type=int, default=0, help="measure N generated RGB images instead of --dataset")
    p.add_argument("--side", type=int, default=64, help="side of the generated images (default 64)")
    p.add_argument("--stream-workers", type=int, default=2, help="read-ahead threads of the stream loader")
    p.add_argument("--out", default=None, help="also write the numbers as JSON to this file")
    args = p.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    load_before = os.getloadavg()[0]

    with scratch_space("raynas-loader-bench-") as scratch:
        home = Path(args.home) if args.home else scratch / "home"
        store = DatasetStore(home)
        if args.generate:
            args.dataset = f"generated-{args.generate}-{args.side}"
            if not store.exists(args.dataset):
                generate_dataset(store, args.generate, args.side, args.dataset)
        info = store.info(args.dataset)  # builds a built-in on first use; not timed
        config = LoaderConfig(image_size=args.image_size, channels=1, batch_size=args.batch_size,
                              augment=True, backend="memory")

        memory = measure(lambda: create_loaders(args.dataset, config, ("train",), store)["train"], args.epochs)
        normalize = memory.pop("loader").normalize
        folder_root = scratch / "imagefolder"
        n_files = write_image_folder(store, args.dataset, folder_root)
        folders = {}
        for w in workers:
            folders[w] = measure(lambda: imagefolder_loader(folder_root, config, normalize, w), args.epochs)
            del folders[w]["loader"]  # ends persistent workers before the next measurement

        stream_config = LoaderConfig(**dict(config.to_json(), backend="stream", workers=args.stream_workers))
        stream = measure(lambda: create_loaders(args.dataset, stream_config, ("train",), store)["train"],
                         args.epochs)
        stream_groups = len(stream.pop("loader").groups)

        ray_start = start_ray()
        ray_config = LoaderConfig(**dict(config.to_json(), backend="ray"))
        ray_result = measure(lambda: create_loaders(args.dataset, ray_config, ("train",), store)["train"],
                             args.epochs)
        ray_result.pop("loader")
        ray_result["ray_start_s"] = ray_start

    import ray

    env = {"date": dt.date.today().isoformat(), "dataset": args.dataset, "train_images": memory["images"],
           "png_files": n_files, "stored_shape": list(info.shape), "image_size": args.image_size,
           "batch_size": args.batch_size, "channels": 1, "augment": True, "warm_epochs": args.epochs,
           "torch": torch.__version__, "torchvision": torchvision.__version__, "ray": ray.__version__,
           "python": platform.python_version(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "load_average_1min_before": round(load_before, 2),
           "stream_workers": args.stream_workers, "stream_row_groups": stream_groups}
    print(f"loader throughput, {env['date']}: dataset {args.dataset}, train split {memory['images']} images "
          f"stored {'x'.join(map(str, info.shape))}, served at 1x{args.image_size}x{args.image_size}, "
          f"batch {args.batch_size}, random crop on, median of {args.epochs} warm epochs")
    print(f"torch {env['torch']}, torchvision {env['torchvision']}, ray {env['ray']}, python {env['python']}, "
          f"{env['cpu_count']} CPUs, {env['torch_threads']} torch threads, 1-minute load average at start "
          f"{load_before:.2f}")
    others = memory["others_cpu_s"]
    if others is not None:
        share = others / memory["wall_s"]
        print(f"other processes used {share:.0%} of a core while the in-memory loader was measured")
        if share > 0.1:
            print("warning: the machine was not quiet; small multi-threaded torch ops slow down badly when "
                  "cores are shared -- rerun on a quiet machine")

    rows = [("raynas memory", memory)]
    rows += [(f"ImageFolder workers={w}", r) for w, r in folders.items()]
    rows += [("raynas stream", stream), ("raynas ray", ray_result)]
    print(f"\n{'loader':<24} {'setup s':>8} {'1st epoch s':>12} {'cold img/s':>11} {'warm img/s':>11}")
    for name, r in rows:
        print(f"{name:<24} {r['setup_s']:>8.2f} {r['first_epoch_s']:>12.3f} {r['cold_img_s']:>11,.0f} "
              f"{r['warm_img_s']:>11,.0f}")
    print(f"(starting Ray took {ray_start:.1f} s, not included above)\n")

    ratios = {}
    for w, r in folders.items():
        ratios[f"raynas-memory / ImageFolder-w{w}, warm"] = memory["warm_img_s"] / r["warm_img_s"]
        ratios[f"raynas-memory / ImageFolder-w{w}, cold"] = memory["cold_img_s"] / r["cold_img_s"]
        ratios[f"raynas-stream / ImageFolder-w{w}, warm"] = stream["warm_img_s"] / r["warm_img_s"]
        ratios[f"raynas-stream / ImageFolder-w{w}, cold"] = stream["cold_img_s"] / r["cold_img_s"]
        ratios[f"raynas-ray / ImageFolder-w{w}, warm"] = ray_result["warm_img_s"] / r["warm_img_s"]
    for k, v in ratios.items():
        print(f"{k:<38} {v:>7.2f}x")

    if args.out:
        with open(args.out, "w") as fh:
            json.dump({**env, "raynas_memory": memory, "raynas_stream": stream, "raynas_ray": ray_result,
                       "imagefolder": {f"workers={w}": r for w, r in folders.items()}, "ratios": ratios},
                      fh, indent=2)


if __name__ == "__main__":
    main()
