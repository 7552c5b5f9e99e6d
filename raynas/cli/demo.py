"""``raynas demo``: the main job on embedded defaults, end to end.

Builds the offline suite, shows it, draws a sample grid per dataset and streams one epoch of
each through the loader; then runs a short DARTS search from scratch on ``glyph-digits`` and
retrains the architecture it finds. (Zoo transfer joins the demo when the zoo lands.)
"""

from __future__ import annotations

import argparse
import time

from raynas.cli.data import INFO_COLUMNS, info_rows
from raynas.cli.output import print_json, print_table
from raynas.data import DatasetStore
from raynas.data.grid import sample_grid
from raynas.data.loader import LoaderConfig, create_loader
from raynas.search.config import SearchConfig
from raynas.search.loop import run_search
from raynas.search.results import new_run_dir, write_config
from raynas.search.retrain import RetrainConfig, retrain

DEMO_TARGET = "glyph-digits"


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[parent], help="run the main job on the built-in offline suite")
    p.add_argument("--epochs", type=int, default=4, help="search epochs (default 4)")
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
    if not args.json:
        print_table(f"built-in suite ({built:.1f} s to build or open)", INFO_COLUMNS, info_rows(infos))
        print_table("one augmented training epoch at 1x32x32 (in-memory loader)", ["dataset", "images/s"],
                    [[r["name"], r["images_per_s"]] for r in rows])
        print(f"sample grids: {out_dir}/\n\nsearching {DEMO_TARGET} from scratch (darts, cpu preset, "
              f"{args.epochs} epochs)...")

    search = SearchConfig(dataset=DEMO_TARGET, algo="darts", preset="cpu", epochs=args.epochs)
    run_dir = new_run_dir(store.home.runs, search)
    write_config(run_dir, search)
    result = run_search(search, store=store, run_dir=run_dir, verbose=not args.json)
    scores = retrain(result.genotype, RetrainConfig(dataset=DEMO_TARGET, epochs=5, image_size=16, channels=8, cells=5),
                     store, run_dir, verbose=not args.json)
    if args.json:
        print_json({"datasets": [i.to_json() for i in infos], "grids": grids, "loader": rows,
                    "suite_seconds": round(built, 2), "run_dir": str(run_dir), "genotype": result.genotype.to_json(),
                    "val_acc": result.history[-1]["val_acc"], "test_acc": scores["test_acc"]})
        return
    print(f"\nfound:\n{result.genotype}\nretrained for 5 epochs: test accuracy {100 * scores['test_acc']:.1f}% "
          f"(chance {100 * scores['chance_acc']:.1f}%)\nrun directory: {run_dir}")
