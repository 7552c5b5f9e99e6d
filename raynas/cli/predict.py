"""``raynas predict``: batch inference of a trained model over images, a dataset or a Parquet file, on Ray."""

from __future__ import annotations

import argparse
from typing import Any

from raynas.cli.context import add_shared_options, configure_ray_from_args
from raynas.cli.output import print_json, print_table
from raynas.errors import RaynasError

SHOWN_SKIPPED = 20  # skipped files printed for people; --json lists more, the count is always complete
MAX_CONFUSION_SHOWN = 20  # larger confusion matrices are only written to the CSV file


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("predict", parents=[parent], help="classify a folder of images, a dataset or a Parquet file",
                       description="Runs a trained model over many images as Ray Data batch inference (an actor "
                                   "pool, GPU actors when the cluster has GPUs) and writes one Parquet file with "
                                   "the class, its index and the top-k probabilities of every image. Unreadable "
                                   "images are reported and skipped. For a labelled dataset split it also "
                                   "reports the accuracy and writes the confusion matrix next to --out.")
    p.add_argument("model", metavar="RUN", nargs="?",
                   help="a run directory after `raynas retrain`, a model directory or zoo:NAME")
    p.add_argument("input", metavar="INPUT", nargs="?",
                   help="a folder of images (searched recursively), an image file, a stored dataset name or a "
                        "Parquet file with an 'image' column (encoded bytes or uint8 tensors; 'path'/'id' columns "
                        "are copied)")
    p.add_argument("--out", metavar="FILE", help="the Parquet file to write (required; replaced atomically)")
    p.add_argument("--dataset", default=None,
                   help="for zoo:NAME: the dataset whose head and preprocessing to use")
    p.add_argument("--split", default=None, metavar="SPLIT",
                   help="for a dataset: predict only its train, val or test rows (with labels: report accuracy)")
    p.add_argument("--batch-size", type=int, default=256, help="images per inference batch (default 256)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="inference actors (default: one per GPU, else one per CPU but one)")
    p.add_argument("--top-k", type=int, default=5,
                   help="probabilities kept per image (default 5, at most the model's classes)")
    add_shared_options(p)
    p.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> None:
    """Missing arguments are a RaynasError (exit 1, with the usage as the fix), like every other input problem."""
    from raynas.model.predict import predict

    usage = "run `raynas predict RUN INPUT --out predictions.parquet`"
    if not args.model or not args.input:
        raise RaynasError("no model (RUN) given" if not args.model else "no INPUT given",
                          f"{usage} (RUN: a run or model directory or zoo:NAME; INPUT: a folder, an image, "
                          "a dataset name or a Parquet file)")
    if not args.out:
        raise RaynasError("no --out given", f"{usage}: the predictions are written to that Parquet file")
    configure_ray_from_args(args)
    answer = predict(args.model, args.input, args.out, dataset=args.dataset, split=args.split,
                     batch_size=args.batch_size, concurrency=args.concurrency, top_k=args.top_k, home=args.home,
                     storage=args.storage, address=args.address, progress=not args.json)
    if args.json:
        print_json(answer)
        return
    print_summary(answer)


def print_summary(answer: dict[str, Any]) -> None:
    what = answer["input"]
    split = f" ({what['split']} split)" if what.get("split") else ""
    print(f"predicted {answer['predicted']:,} of {what['rows']:,} images of {what['where']}{split} in "
          f"{answer['seconds']:.1f} s ({answer['images_per_s']:,.0f} images/s, {answer['concurrency']} "
          f"{answer['device']} actor(s)) -> {answer['out']}")
    if what.get("ignored"):
        print(f"ignored {what['ignored']} file(s) that are not images, e.g. {what['ignored_files'][0]}")
    if answer["skipped"]:
        print(f"skipped {answer['skipped']} unreadable image(s):")
        for s in answer["skipped_files"][:SHOWN_SKIPPED]:
            print(f"  {s.get('path', s.get('row'))}: {s['reason']}")
        if answer["skipped"] > SHOWN_SKIPPED:
            print(f"  ... and {answer['skipped'] - SHOWN_SKIPPED} more (--json lists up to "
                  f"{len(answer['skipped_files'])})")
    if "note" in answer:
        print(f"note: {answer['note']}")
    if "accuracy" in answer:
        confusion = answer["confusion"]
        names, matrix = confusion["class_names"], confusion["matrix"]
        print(f"accuracy {100 * answer['accuracy']:.1f}% on {sum(map(sum, matrix)):,} labelled images")
        if len(names) <= MAX_CONFUSION_SHOWN:
            print_table("confusion matrix (rows: label, columns: predicted)", ["label", *names],
                        [[name, *row] for name, row in zip(names, matrix)])
        print(f"confusion matrix: {confusion['csv']}")
