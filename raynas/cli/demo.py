"""``raynas demo``: the main job on embedded defaults, end to end.

1. builds the offline suite, shows it, draws a sample grid per dataset and streams one
   epoch of each through the loader;
2. pretrains a small zoo (one supernet per source, in parallel Ray tasks), leaving the
   target ``glyph-digits`` out;
3. ranks the zoo's sources for the target by OT dataset distance;
4. searches the target twice with the same budget, from scratch and warm-started from the
   nearest source, and compares their validation accuracy epoch by epoch;
5. retrains the warm-started architecture and publishes the target's supernet to the zoo.

Everything stays under ``<home>/demo``: the zoo and embeddings there, so a demo never
mixes with a real zoo. Searches are seeded, so a second demo republishes identical
supernets (no new zoo versions) and gives the same numbers.
"""

from __future__ import annotations

import argparse
import sys
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
DEMO_SOURCES = ("glyph-upper", "mnist5k", "textures")


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[parent], help="run the main job on the built-in offline suite")
    p.add_argument("--epochs", type=int, default=4, help="search epochs on the target (default 4)")
    p.add_argument("--zoo-epochs", type=int, default=3, help="pretraining epochs per zoo source (default 3)")
    p.add_argument("--max-steps", type=int, default=10, help="steps per epoch, at most (default 10)")
    p.add_argument("--sequential", action="store_true", help="pretrain the zoo without Ray")
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


def run_demo(args: argparse.Namespace) -> None:
    from raynas.ot.encoders import create_encoder
    from raynas.service import open_embeddings, open_zoo
    from raynas.transfer.ranking import rank_zoo
    from raynas.transfer.warm_start import warm_start
    from raynas.zoo.build import plan_jobs, run_jobs
    from raynas.zoo.publish import publish_result

    quiet = args.json
    store = DatasetStore(args.home)
    answer = show_suite(store, quiet)

    zoo_storage, emb_storage = store.home.shared(str(store.home.root / "demo" / "shared"))
    template = SearchConfig(dataset=DEMO_TARGET, preset="cpu", epochs=args.zoo_epochs,
                            max_steps_per_epoch=args.max_steps)
    jobs = plan_jobs(list(DEMO_SOURCES), template, store.home, zoo_storage, emb_storage, "pixels")
    parallel = not args.sequential
    if parallel:
        from raynas.ray_session import ensure_ray

        ensure_ray()
    say(quiet, f"\npretraining the zoo: {', '.join(DEMO_SOURCES)} (cpu preset, {args.zoo_epochs} epochs, "
               f"{'in parallel Ray tasks' if parallel else 'one after another'})...")
    t0 = time.perf_counter()
    built = run_jobs(jobs, parallel=parallel, verbose=not quiet and not parallel)
    answer["zoo"] = {"entries": built, "seconds": round(time.perf_counter() - t0, 1)}
    zoo, embeddings = open_zoo(zoo_storage), open_embeddings(emb_storage)

    encoder = create_encoder("pixels", storage=emb_storage, home=store.home)
    entries = [m for m in zoo.list() if m.kind == "single" and m.source != DEMO_TARGET]
    ranked = rank_zoo(DEMO_TARGET, entries, store, embeddings, encoder)
    answer["ranking"] = ranked.rows()
    if not quiet:
        print_table(f"zoo sources for {DEMO_TARGET} by OT distance (cascade)", ["rank", "source", "distance", "method"],
                    [[r["rank"], r["source"], f"{r['distance']:.4g}", r["method"]] for r in ranked.rows()])

    curves = {}
    for transfer in ("scratch", "ot"):
        config = SearchConfig(dataset=DEMO_TARGET, preset="cpu", epochs=args.epochs, transfer=transfer,
                              max_steps_per_epoch=args.max_steps)
        model, record = warm_start(config, store, zoo, embeddings, emb_storage)
        say(quiet, f"\nsearching {DEMO_TARGET} ({transfer}"
                   + (f": warm start from '{record['source']}'" if model is not None else "") + ")...")
        run_dir = new_run_dir(store.home.runs, config)
        write_config(run_dir, config)
        result = run_search(config, store=store, run_dir=run_dir, initial_model=model, transfer=record,
                            verbose=not quiet)
        curves[transfer] = {"run_dir": str(run_dir), "source": record.get("source"),
                            "val_acc": [h["val_acc"] for h in result.history], "genotype": str(result.genotype)}
    answer["searches"] = curves
    if not quiet:
        print_table(f"val accuracy on {DEMO_TARGET} by epoch, same budget", ["epoch", "scratch %", "warm start %"],
                    [[e + 1, round(100 * a, 1), round(100 * b, 1)]
                     for e, (a, b) in enumerate(zip(curves["scratch"]["val_acc"], curves["ot"]["val_acc"]))])

    scores = retrain(result.genotype, RetrainConfig(dataset=DEMO_TARGET, epochs=5, image_size=16, channels=8, cells=5),
                     store, run_dir, verbose=not quiet)
    published = publish_result(result, zoo, store, embeddings, encoder)
    answer.update(test_acc=scores["test_acc"], chance_acc=scores["chance_acc"], published=published.summary(),
                  run_dir=str(run_dir), genotype=result.genotype.to_json())
    if quiet:
        print_json(answer)
        return
    print(f"\nfound (warm start):\n{result.genotype}\nretrained for 5 epochs: test accuracy "
          f"{100 * scores['test_acc']:.1f}% (chance {100 * scores['chance_acc']:.1f}%)\n"
          f"published {DEMO_TARGET} to the demo zoo; run directory: {run_dir}")
