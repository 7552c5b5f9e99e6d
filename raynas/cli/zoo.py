"""``raynas zoo``: pretrain supernets into the zoo, list and remove entries."""

from __future__ import annotations

import argparse
import sys

from raynas.cli.context import add_shared_options, open_shared
from raynas.cli.output import print_json, print_table
from raynas.errors import RaynasError
from raynas.search.algorithms import ALGORITHMS
from raynas.search.config import SearchConfig
from raynas.space.config import PRESETS


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    zoo = sub.add_parser("zoo", help="the zoo of pretrained supernets: build, list, remove")
    cmds = zoo.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)

    p = cmds.add_parser("build", parents=[parent], help="pretrain one supernet per source dataset (or one over several)")
    p.add_argument("--datasets", default=None, help="comma-separated source datasets (default: every dataset)")
    p.add_argument("--exclude", default="", help="comma-separated datasets to leave out, e.g. the future target")
    p.add_argument("--multi", metavar="NAME", default=None,
                   help="train ONE supernet over all the datasets (shared cells and alphas, a head each) named NAME")
    p.add_argument("--preset", default="cpu", help=f"size preset: {', '.join(PRESETS.names())} (default cpu)")
    p.add_argument("--algo", default="darts", help=f"one of: {', '.join(ALGORITHMS.names())} (default darts)")
    p.add_argument("--epochs", type=int, default=10, help="search epochs per source (default 10)")
    p.add_argument("--max-steps", type=int, default=None, help="cap the steps per epoch (quick builds)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder", default="pixels", help="encoder of the stored OT embeddings (default pixels)")
    p.add_argument("--sequential", action="store_true",
                   help="pretrain in this process one source after another instead of in parallel Ray tasks")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_shared_options(p)
    p.set_defaults(run=run_build)

    p = cmds.add_parser("list", parents=[parent], help="the published supernets")
    add_shared_options(p)
    p.set_defaults(run=run_list)

    p = cmds.add_parser("remove", parents=[parent], help="delete a zoo entry (all its versions)")
    p.add_argument("name")
    add_shared_options(p)
    p.set_defaults(run=run_remove)


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def run_build(args: argparse.Namespace) -> None:
    from raynas.zoo.build import plan_jobs, run_jobs

    ALGORITHMS.get(args.algo)
    PRESETS.get(args.preset)
    parallel = not args.sequential
    shared = open_shared(args)
    exclude = set(_names(args.exclude))
    datasets = _names(args.datasets) or shared.store.names()
    unknown = sorted(exclude - set(datasets)) if args.datasets else []
    if unknown:
        raise RaynasError(f"--exclude names datasets that are not being built: {', '.join(unknown)}")
    datasets = [d for d in datasets if d not in exclude]
    if not datasets:
        raise RaynasError("no datasets left to pretrain on", "check --datasets and --exclude")
    template = SearchConfig(dataset=datasets[0], algo=args.algo, preset=args.preset, epochs=args.epochs,
                            seed=args.seed, max_steps_per_epoch=args.max_steps, device=args.device,
                            encoder=args.encoder)
    jobs = plan_jobs(datasets, template, shared.store.home, shared.zoo_storage, shared.embedding_storage,
                     args.encoder, multi=args.multi)
    quiet = args.json
    if not quiet:
        where = "in parallel Ray tasks" if parallel and len(jobs) > 1 else "one after another"
        print(f"pretraining {len(jobs)} supernet(s) {where}: {', '.join(j.name for j in jobs)}", file=sys.stderr)
    if parallel and len(jobs) > 1:
        from raynas.ray_session import ensure_ray

        ensure_ray(args.address)  # a local Ray unless one is connected; tasks publish through the zoo actor
    finished = []

    def report(row: dict) -> None:
        finished.append(row)
        if not quiet:
            print(f"[{len(finished)}/{len(jobs)}] published {row['name']} ({row['kind']}, val acc "
                  f"{100 * row['accuracy']:.1f}%, {row['seconds']:.0f} s)", file=sys.stderr, flush=True)

    rows = run_jobs(jobs, parallel=parallel, on_done=report, verbose=not quiet)
    if args.json:
        print_json(rows)
        return
    print_table("published", ["name", "source", "kind", "val acc %", "epochs", "seconds"],
                [[r["name"], r["source"], r["kind"], round(100 * r["accuracy"], 1), r["epochs"], round(r["seconds"])]
                 for r in rows])


def run_list(args: argparse.Namespace) -> None:
    manifests = open_shared(args).zoo.list()
    rows = [m.summary() for m in manifests]
    if args.json:
        print_json(rows)
        return
    if not rows:
        print("the zoo is empty: build it with `raynas zoo build`")
        return
    print_table(None, ["name", "kind", "source", "val acc %", "algo", "epochs", "space", "created"],
                [[r["name"], r["kind"], r["source"], round(100 * r["accuracy"], 1) if r["accuracy"] is not None else "-",
                  r["algo"], r["epochs"], f"{r['in_channels']}ch C{r['channels']} {r['cells']} cells",
                  r["created"].replace("T", " ")[:16]] for r in rows])


def run_remove(args: argparse.Namespace) -> None:
    open_shared(args).zoo.remove(args.name)
    if args.json:
        print_json({"removed": args.name})
    else:
        print(f"removed {args.name}")
