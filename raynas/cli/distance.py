"""``raynas distance``: rank zoo sources (or given datasets) for a target by OT dataset distance."""

from __future__ import annotations

import argparse

from raynas.cli.context import add_shared_options, open_workspace
from raynas.cli.options import split_names
from raynas.cli.output import print_json, print_table
from raynas.errors import RaynasError
from raynas.zoo.manifest import SourceDataset, ZooManifest


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("distance", parents=[parent], help="rank zoo sources for a target dataset by OT distance")
    p.add_argument("target", help="the target dataset")
    p.add_argument("--top", type=int, default=None, help="show the K nearest (default all)")
    p.add_argument("--method", default="cascade", help="cascade (default), otdd, hot or sliced")
    p.add_argument("--encoder", default="pixels", help="feature encoder of the embeddings: pixels (default), edges, "
                                                         "resnet18 or supernet")
    p.add_argument("--sources", default=None,
                   help="comma-separated datasets to rank instead of the zoo's sources (no zoo needed)")
    add_shared_options(p)
    p.set_defaults(run=run_distance)


def _dataset_entries(names: list[str], store) -> list[ZooManifest]:
    """Stand-ins for zoo entries, so datasets from the store rank like zoo sources."""
    out = []
    for name in names:
        info = store.info(name)
        out.append(ZooManifest(name=name, kind="single", sources=(SourceDataset(name, info.content_hash,
                                                                                info.num_classes),),
                               space={}, algo="-", epochs=0, val_acc=None))
    return out


def run_distance(args: argparse.Namespace) -> None:
    from raynas.ot.distances import DISTANCES
    from raynas.ot.encoders import create_encoder
    from raynas.transfer.ranking import rank_zoo

    DISTANCES.get(args.method)
    if args.top is not None and args.top < 1:
        raise RaynasError(f"--top {args.top} keeps nothing", "pass --top 1 or more")
    sources = split_names(args.sources, "--sources")
    shared = open_workspace(args)
    store = shared.store
    info = store.info(args.target)
    if sources:
        entries = _dataset_entries(sources, store)
    else:
        entries = shared.zoo.list()
    left_out = [m.name for m in entries if any(s.content_hash == info.content_hash or s.name == info.name
                                              for s in m.sources)]
    entries = [m for m in entries if m.name not in left_out]
    encoder = create_encoder(args.encoder, storage=shared.embedding_storage, home=store.home, zoo=shared.zoo)
    ranked = rank_zoo(args.target, entries, store, shared.embeddings, encoder, args.method, args.top)
    seconds = ranked.ranking.seconds
    if args.json:
        print_json({"target": args.target, "method": args.method, "encoder": ranked.encoder_version,
                    "embed_s": round(ranked.embed_s, 4), "query_s": round(seconds.get("total", 0.0), 4),
                    "seconds": seconds, "evaluated": ranked.ranking.evaluated, "left_out": left_out,
                    "missing": ranked.missing, "ranking": ranked.rows()})
        return
    print_table(f"sources for {args.target} ({args.method}, encoder {ranked.encoder_version})",
                ["rank", "source", "dataset", "distance", "method"],
                [[r["rank"], r["source"], r["dataset"], f"{r['distance']:.5g}", r["method"]] for r in ranked.rows()])
    stages = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in seconds.items() if k != "total")
    print(f"query {seconds.get('total', 0.0) * 1000:.0f} ms ({stages}); embedding the target "
          f"{ranked.embed_s * 1000:.0f} ms")
    if left_out:
        print(f"left out (trained on {args.target}): {', '.join(left_out)}")
    if ranked.missing:
        print(f"no embedding for: {', '.join(ranked.missing)}")
