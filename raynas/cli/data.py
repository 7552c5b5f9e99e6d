"""``raynas data``: list, show, import and remove datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from raynas.cli.output import print_json, print_table
from raynas.data import IMPORTERS, DatasetInfo, DatasetStore
from raynas.data.builtin import BUILTINS, in_suite
from raynas.data.grid import MAX_GRID_CLASSES, MAX_PER_CLASS, check_grid_size, sample_grid
from raynas.data.importers import ARROW_SUFFIXES, FILE_IMPORTS, check_options
from raynas.data.store import DatasetEntry
from raynas.data.validate import MAX_SIDE, MIN_SIDE
from raynas.errors import RaynasError


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    data = sub.add_parser("data", help="list, show, import and remove datasets")
    cmds = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--storage", default=None, metavar="URI",
                        help="shared storage root (a path or pyarrow.fs URI such as s3://bucket/raynas): imports "
                             "also go to its datasets/, where every node of a cluster finds them (default: the "
                             "home only)")
    parent = argparse.ArgumentParser(add_help=False, parents=[parent, shared])

    p = cmds.add_parser("list", parents=[parent], help="the built-in suite and imported datasets")
    p.set_defaults(run=run_list)

    p = cmds.add_parser("show", parents=[parent], help="details and a labelled sample grid of one dataset")
    p.add_argument("name")
    p.add_argument("--out", help="PNG path for the grid (default: <home>/plots/NAME.png)")
    p.add_argument("--per-class", type=int, default=8,
                   help=f"images per class row, 1 to {MAX_PER_CLASS} (default 8)")
    p.add_argument("--max-classes", type=int, default=16,
                   help=f"at most this many class rows, 1 to {MAX_GRID_CLASSES} (default 16)")
    p.set_defaults(run=run_show)

    p = cmds.add_parser("import", parents=[parent], help="import images into the raynas format")
    p.add_argument("path", help="a class-per-folder tree, a Meta-Album dataset folder, an .npz file, or a "
                                "Parquet or Arrow IPC file with image and label columns")
    p.add_argument("--name", required=True, help="dataset name: lower-case letters, digits, '.', '_', '-'")
    p.add_argument("--format", choices=IMPORTERS.names(), default=None,
                   help="input layout (default: npz for .npz files, parquet for .parquet files, arrow for .arrow, "
                        ".feather and .ipc files, meta-album when labels.csv exists, else imagefolder)")
    p.add_argument("--image-size", type=int, default=None,
                   help=f"centre-crop and resize every image to NxN, N from {MIN_SIDE} to {MAX_SIDE} (default: "
                        "keep the size, which must be square and the same for all images)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="store gray (1) or RGB (3) (default: 1 when every image is gray, else 3)")
    p.add_argument("--domain", default=None, help="a domain label shown by `data list` (default: custom)")
    p.add_argument("--split", default="0.5,0.25,0.25", help="train,val,test fractions (default 0.5,0.25,0.25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified split, 0 or more (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of the same name")
    p.set_defaults(run=run_import)

    p = cmds.add_parser("migrate", parents=[parent], help="rewrite datasets stored by older versions in the current "
                                                          "layout (bounded row groups, shards)",
                        description="Datasets imported by older raynas versions are one Parquet file with large row "
                                    "groups: they open, but streaming readers then hold a whole group. This rewrites "
                                    "them as an import does today, a piece at a time, keeping their content hash "
                                    "(embeddings, zoo entries and runs that name them stay valid). Current ones are "
                                    "left as they are.")
    p.add_argument("names", nargs="*", metavar="NAME", help="datasets to migrate (default: every imported one)")
    p.set_defaults(run=run_migrate)

    p = cmds.add_parser("remove", parents=[parent], help="delete an imported dataset")
    p.add_argument("name")
    p.set_defaults(run=run_remove)


def _store(args: argparse.Namespace) -> DatasetStore:
    """The home's store, with the ``--storage`` root checked first (a missing bucket fails in seconds)."""
    if args.storage:
        from raynas.storage import Storage

        Storage(args.storage).check_root()
    return DatasetStore(args.home, args.storage)


def info_rows(infos: list[DatasetInfo]) -> list[list]:
    return [[i.name, i.domain, i.num_classes, i.num_images, "x".join(map(str, i.shape)),
             "/".join(str(i.split_counts[s]) for s in ("train", "val", "test"))] for i in infos]


INFO_COLUMNS = ["name", "domain", "classes", "images", "shape", "train/val/test"]


def entry_json(entry: DatasetEntry) -> dict:
    if entry.info is not None:
        return dict(entry.info.to_json(), builtin=entry.name in BUILTINS, suite=in_suite(entry.name), damaged=False)
    return {"name": entry.name, "builtin": entry.name in BUILTINS, "suite": in_suite(entry.name), "damaged": True,
            "error": entry.error.problem, "fix": entry.error.fix}


def run_list(args: argparse.Namespace) -> None:
    """Every dataset; a damaged file is listed as damaged, with the reason, not fatal to the list."""
    entries = _store(args).entries()
    if args.json:
        print_json([entry_json(e) for e in entries])
        return
    damaged = [e for e in entries if e.info is None]
    rows = [info_rows([e.info])[0] if e.info is not None else [e.name, "DAMAGED", "-", "-", "-", "-"]
            for e in entries]
    title = f"{len(entries)} datasets" + (f" ({len(damaged)} damaged)" if damaged else "")
    print_table(title, INFO_COLUMNS, rows)
    outside = [e.name for e in entries if e.name in BUILTINS and not in_suite(e.name)]
    if outside:
        print(f"built-in but not in the benchmark suite (transforms of another set): {', '.join(outside)}")
    for e in damaged:
        print(f"damaged: {e.name}: {e.error}")


def run_show(args: argparse.Namespace) -> None:
    """The grid is written under a temporary name and moved over ``--out``; an unwritable path
    is a clear error naming it (from :func:`raynas.figures.save_figure`)."""
    check_grid_size(args.per_class, args.max_classes)
    store = _store(args)
    ds = store.open(args.name)  # labels, and the row groups of the images drawn
    out = Path(args.out) if args.out else store.home.root / "plots" / f"{args.name}.png"
    sample_grid(ds, out, per_class=args.per_class, max_classes=args.max_classes)
    about = BUILTINS.get(args.name).description if args.name in BUILTINS else None
    if args.json:
        print_json(dict(ds.info.to_json(), grid=str(out), builtin=about is not None, description=about))
        return
    print_table(None, INFO_COLUMNS, info_rows([ds.info]))
    if about:
        print(f"built-in: {about}" + ("" if in_suite(args.name) else "; not in the benchmark suite (a transform "
                                                                       "of another set)"))
    if ds.info.provenance.get("differs"):  # how a built-in differs from the other sets of its domain
        print(f"unlike its domain's other sets: {ds.info.provenance['differs']}")
    print(f"classes: {', '.join(ds.info.class_names)}")
    print(f"flips allowed: {'yes' if ds.info.allow_flip else 'no'}; content hash {ds.info.content_hash[:16]}")
    print(f"grid: {out}")


def detect_format(path: Path) -> str:
    if path.suffix.lower() == ".npz":
        return "npz"
    if path.suffix.lower() == ".parquet":
        return "parquet"
    if path.suffix.lower() in ARROW_SUFFIXES:
        return "arrow"
    if (path / "labels.csv").is_file():
        return "meta-album"
    return "imagefolder"


def parse_fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(f) for f in text.split(","))
    except ValueError:
        raise RaynasError(f"--split {text!r} is not a list of numbers", "write it as 0.5,0.25,0.25") from None


def run_import(args: argparse.Namespace) -> None:
    """Every check that needs no image (options, names, the dataset folder) comes before
    the first file is read; the save itself refuses an existing name atomically."""
    fractions = parse_fractions(args.split)
    check_options(args.name, args.image_size, args.channels, args.seed, fractions)
    if args.name in BUILTINS:
        raise RaynasError(f"'{args.name}' is the name of a built-in dataset", "choose another --name")
    source = Path(args.path)
    if not source.exists():
        raise RaynasError(f"{source} does not exist", "check the path")
    store = _store(args)
    store.check_writable()
    if store.exists(args.name) and not args.overwrite:  # fail before reading thousands of files
        raise RaynasError(f"dataset '{args.name}' already exists",
                          "choose another --name, or pass --overwrite to replace it")
    fmt = args.format or detect_format(source)
    kwargs = dict(name=args.name, image_size=args.image_size, channels=args.channels,
                  seed=args.seed, fractions=fractions)
    if args.domain:
        kwargs["domain"] = args.domain
    plan = None
    if fmt in FILE_IMPORTS:  # streamed into the store, in memory that does not grow with the dataset
        plan = FILE_IMPORTS.get(fmt)(source, name=args.name, **({"domain": args.domain} if args.domain else {}))
    if plan is not None:
        path, info = store.save_streamed(plan, overwrite=args.overwrite, image_size=args.image_size,
                                         channels=args.channels, seed=args.seed, fractions=fractions)
    else:
        ds = IMPORTERS.get(fmt)(source, **kwargs)
        path, info = store.save(ds, overwrite=args.overwrite), ds.info
    if args.json:
        print_json(dict(info.to_json(), path=str(path)))
    else:
        print_table(f"imported {fmt} from {source}", INFO_COLUMNS, info_rows([info]))
        print(f"stored: {path}")


def run_migrate(args: argparse.Namespace) -> None:
    store = _store(args)
    names = args.names or [n for n in store.stored_names() if n not in BUILTINS]
    for name in names:  # every name checked before any dataset is rewritten
        if name in BUILTINS:
            raise RaynasError(f"'{name}' is a built-in dataset: it is rebuilt, not migrated",
                              "name an imported dataset (`raynas data list`)")
        if not store.exists(name):
            raise RaynasError(f"dataset '{name}' not found", "`raynas data list` shows what is stored")
    done = {name: store.migrate(name) for name in names}
    if args.json:
        print_json([{"name": n, "migrated": why is not None, "was": why} for n, why in done.items()])
        return
    for name, why in done.items():
        print(f"{name}: migrated (was {why})" if why else f"{name}: already current")
    if not done:
        print("no imported datasets")


def run_remove(args: argparse.Namespace) -> None:
    path = _store(args).remove(args.name)  # a file, or a folder of shards (and the shared copy)
    note = " (a built-in: it is rebuilt on next use)" if args.name in BUILTINS else ""
    if args.json:
        print_json({"removed": args.name, "path": str(path)})
    else:
        print(f"removed {args.name}{note}")
