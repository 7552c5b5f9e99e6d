"""``raynas demo``: the main job on embedded defaults, end to end.

1. builds the offline suite, shows it, draws a sample grid per dataset and streams one
   epoch of each through the loader;
2. pretrains a small zoo (one supernet per source, as Ray Tune trials), leaving the
   target ``glyph-digits`` out (a rerun reuses the sources that are already current);
3. ranks the zoo's sources for the target by OT dataset distance;
4. races the nearest sources and a search from scratch as Ray Tune trials with the same
   budget (ASHA stops trailing ones), prints the leaderboard and the val curves side by side;
5. retrains the winner's architecture (the trained model goes to the run directory) and
   publishes the target's supernet to the zoo;
6. points ``<home>/demo/winner`` at the winner's run and writes a few of the target's test
   images to ``<home>/demo/sample-images``, so ``raynas predict`` and ``raynas serve`` can be
   tried on them at once.

Everything stays under ``<home>/demo``: the zoo, embeddings and Tune results there, so a demo
never mixes with a real zoo. Searches are seeded, so a second demo gives the same numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from raynas.cli.data import INFO_COLUMNS, info_rows
from raynas.cli.output import print_json, print_table
from raynas.data import DatasetStore
from raynas.data.grid import sample_grid
from raynas.data.loader import LoaderConfig, create_loader
from raynas.experiment import ExperimentConfig
from raynas.race.config import RaceConfig
from raynas.search.config import SearchConfig
from raynas.search.retrain import RetrainConfig

DEMO_TARGET = "glyph-digits"
DEMO_SOURCES = ("glyph-upper", "mnist5k", "textures")


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[parent], help="run the main job on the built-in offline suite")
    p.add_argument("--epochs", type=int, default=4, help="search epochs on the target (default 4)")
    p.add_argument("--zoo-epochs", type=int, default=3, help="pretraining epochs per zoo source (default 3)")
    p.add_argument("--max-steps", type=int, default=10, help="steps per epoch, at most (default 10)")
    p.add_argument("--sequential", action="store_true", help="pretrain the zoo one source after another in this process")
    p.set_defaults(run=run_demo)


def say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def show_suite(store: DatasetStore, quiet: bool) -> dict:
    t0 = time.perf_counter()
    infos = store.infos()
    built = time.perf_counter() - t0
    out_dir = store.home.root / "demo" / "grids"
    config = LoaderConfig(image_size=32, channels=1, batch_size=64, augment=True)
    rows, grids = [], []
    for info in infos:
        grids.append(str(sample_grid(store.load(info.name), out_dir / f"{info.name}.png", per_class=6,
                                     max_classes=10)))
        loader = create_loader(info.name, "train", config, store)
        t = time.perf_counter()
        seen = sum(len(y) for _, y in loader)
        rows.append({"name": info.name, "images_per_s": round(seen / (time.perf_counter() - t))})
    if not quiet:
        print_table(f"built-in suite ({built:.1f} s to build or open)", INFO_COLUMNS, info_rows(infos))
        print_table("one augmented training epoch at 1x32x32 (in-memory loader)", ["dataset", "images/s"],
                    [[r["name"], r["images_per_s"]] for r in rows])
        print(f"sample grids: {out_dir}/")
    return {"datasets": [i.to_json() for i in infos], "grids": grids, "loader": rows, "suite_seconds": round(built, 2)}


def demo_configs(args: argparse.Namespace) -> tuple[SearchConfig, ExperimentConfig]:
    """The zoo's pretraining template and the race; built first, so bad numbers fail before any work."""
    template = SearchConfig(dataset=DEMO_TARGET, preset="cpu", epochs=args.zoo_epochs,
                            max_steps_per_epoch=args.max_steps, transfer="scratch")
    race = ExperimentConfig(SearchConfig(dataset=DEMO_TARGET, preset="cpu", epochs=args.epochs,
                                         max_steps_per_epoch=args.max_steps, transfer="auto"),
                            RaceConfig(race=len(DEMO_SOURCES), baseline=True),
                            RetrainConfig(epochs=5, channels=8, cells=5), publish=True)
    return template, race


def run_demo(args: argparse.Namespace) -> None:
    from raynas.cli.context import configure_ray_from_args
    from raynas.ray_session import ensure_ray
    from raynas.race.race import run_race
    from raynas.transfer.ranking import rank_zoo
    from raynas.workspace import Workspace
    from raynas.zoo.build import plan_jobs, run_jobs
    from raynas.zoo.tune_build import build_zoo

    template, experiment = demo_configs(args)
    quiet = args.json
    store = DatasetStore(args.home)
    answer = show_suite(store, quiet)

    workspace = Workspace.open(store.home.root, str(store.home.root / "demo" / "shared"))
    jobs, current = plan_jobs(list(DEMO_SOURCES), template, workspace, rebuild=False)
    parallel = not args.sequential
    configure_ray_from_args(args)
    ensure_ray()
    say(quiet, f"\npretraining the zoo: {', '.join(j.name for j in jobs) or 'nothing'} (cpu preset, "
               f"{args.zoo_epochs} epochs, {'as Ray Tune trials' if parallel else 'one after another'})"
               + (f"; already current: {', '.join(current)}" if current else "") + "...")
    t0 = time.perf_counter()
    if not jobs:
        built = []
    elif parallel:
        built = build_zoo(jobs, workspace, verbose=not quiet,
                          resume_with="run the same `raynas demo` command again (published sources are kept, the "
                                      "others start again)").rows
    else:
        built = run_jobs(jobs, verbose=not quiet)
    answer["zoo"] = {"entries": built, "current": current, "seconds": round(time.perf_counter() - t0, 1)}

    entries = [m for m in workspace.zoo.list() if m.kind == "single" and m.source != DEMO_TARGET]
    ranked = rank_zoo(DEMO_TARGET, entries, store, workspace.embeddings, workspace.encoder("pixels"))
    answer["ranking"] = ranked.rows()
    if not quiet:
        print_table(f"zoo sources for {DEMO_TARGET} by OT distance (cascade)", ["rank", "source", "distance", "method"],
                    [[r["rank"], r["source"], f"{r['distance']:.4g}", r["method"]] for r in ranked.rows()])
        say(quiet, f"\nracing the {len(DEMO_SOURCES)} sources and a search from scratch on {DEMO_TARGET} as Ray "
                   "Tune trials...")
    race = run_race(experiment, workspace, verbose=not quiet).answer
    answer["race"] = {k: race[k] for k in ("run_dir", "leaderboard", "winner", "tensorboard", "genotype")}
    retrained, published = race.get("retrain", {}), race.get("published", {})
    answer.update(test_acc=retrained.get("test_acc"), chance_acc=retrained.get("chance_acc"), published=published,
                  run_dir=race["run_dir"], model=retrained.get("model"))
    demo_dir = store.home.root / "demo"
    answer["winner_link"] = str(point_at(demo_dir / "winner", race["run_dir"]))
    answer["sample_images"] = str(write_sample_images(store, demo_dir / "sample-images"))
    if quiet:
        print_json(answer)
        return
    from raynas.cli.search import print_leaderboard

    print()
    print_leaderboard(race)
    board = race["leaderboard"]
    longest = max(len(r["val_acc_curve"]) for r in board)
    print_table(f"val accuracy on {DEMO_TARGET} by epoch, same budget ('-': stopped early by ASHA)",
                ["epoch", *[r["source"] for r in board]],
                [[e + 1, *[round(100 * r["val_acc_curve"][e], 1) if e < len(r["val_acc_curve"]) else "-"
                           for r in board]] for e in range(longest)])
    print(f"\nwinner: {race['winner']['source']}\n{race['genotype_text']}\nretrained for 5 epochs: test accuracy "
          f"{100 * retrained['test_acc']:.1f}% (chance {100 * retrained['chance_acc']:.1f}%)\n"
          f"published {DEMO_TARGET} to the demo zoo; run directory: {race['run_dir']}\n"
          f"TensorBoard: {race['tensorboard']}\n\nuse the trained model ({answer['winner_link']} is the winner's run):\n"
          f"  raynas predict {answer['winner_link']} {answer['sample_images']} --out predictions.parquet\n"
          f"  raynas serve {answer['winner_link']}\n"
          f"  raynas export {answer['winner_link']} --format onnx")


def point_at(link: Path, target: str) -> Path:
    """Make ``link`` a symbolic link to ``target``, replacing an older one in one step."""
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(Path(target).resolve(), tmp)
    os.replace(tmp, link)
    return link


def write_sample_images(store: DatasetStore, folder: Path, count: int = 12) -> Path:
    """``count`` test images of the target as PNG files named by their true class, taken from the
    classes in turn (the split is stored class by class)."""
    import numpy as np
    from PIL import Image

    from raynas.storage import atomic_path

    ds = store.load(DEMO_TARGET)
    x, y = ds.split("test")
    rank = np.zeros(len(y), int)  # the position of each image within its class
    for c in np.unique(y):
        rank[y == c] = np.arange((y == c).sum())
    chosen = np.lexsort((y, rank))[:count]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # an earlier demo's samples
        old.unlink()
    for i, (image, label) in enumerate(zip(x[chosen], y[chosen])):
        name = re.sub(r"[^\w.-]", "_", ds.info.class_names[label])
        with atomic_path(folder / f"{i:02d}-{name}.png") as tmp:
            Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(tmp, format="PNG")
    return folder
