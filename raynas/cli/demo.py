"""``raynas demo``: the main job on embedded defaults.

At this stage of the platform it runs the data part: build the offline suite, show it,
draw a sample grid per dataset and stream one epoch of each through the loader.
"""

from __future__ import annotations

import argparse
import time

from raynas.cli.data import INFO_COLUMNS, info_rows
from raynas.cli.output import print_json, print_table
from raynas.data import DatasetStore
from raynas.data.grid import sample_grid
from raynas.data.loader import LoaderConfig, create_loader


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[parent], help="run the main job on the built-in offline suite")
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> None:
    store = DatasetStore(args.home)
    t0 = time.perf_counter()
    infos = store.infos()
    built = time.perf_counter() - t0
    out_dir = store.home.root / "demo"
    config = LoaderConfig(image_size=32, channels=1, batch_size=64, augment=True)
    rows, grids = [], []
    for info in infos:
        grids.append(str(sample_grid(store.load(info.name), out_dir / f"{info.name}.png", per_class=6,
                                     max_classes=10)))
        loader = create_loader(info.name, "train", config, store)
        t = time.perf_counter()
        seen = sum(len(y) for _, y in loader)
        rows.append({"name": info.name, "images_per_s": round(seen / (time.perf_counter() - t))})
    if args.json:
        print_json({"datasets": [i.to_json() for i in infos], "grids": grids, "loader": rows,
                    "suite_seconds": round(built, 2)})
        return
    print_table(f"built-in suite ({built:.1f} s to build or open)", INFO_COLUMNS, info_rows(infos))
    print_table("one augmented training epoch at 1x32x32 (in-memory loader)", ["dataset", "images/s"],
                [[r["name"], r["images_per_s"]] for r in rows])
    print(f"sample grids: {out_dir}/")
