"""``raynas zoo``: pretrain supernets into the zoo, list and remove entries."""

from __future__ import annotations

import argparse
import sys

from raynas.cli.context import add_shared_options, open_workspace
from raynas.cli.output import print_json, print_table
from raynas.errors import RaynasError
from raynas.cli.options import add_config_flags, build, given, split_names
from raynas.race.config import RaceConfig
from raynas.search.config import SearchConfig

# search fields that make no sense for pretraining from scratch
BUILD_SKIPS = ("transfer", "transfer_mode", "alpha_temperature", "head", "distance", "probe_min_cut")
# the race's fields that size, limit and retry a build's Tune trials
TRIAL_FIELDS = ("cpus_per_trial", "gpus_per_trial", "node_wait_s", "max_concurrent", "max_failures")


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    zoo = sub.add_parser("zoo", help="the zoo of pretrained supernets: build, list, remove")
    cmds = zoo.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)

    p = cmds.add_parser("build", parents=[parent], help="pretrain one supernet per source dataset (or one over several)")
    p.add_argument("--datasets", default=None, help="comma-separated source datasets (default: every dataset)")
    p.add_argument("--exclude", default=None, help="comma-separated datasets to leave out, e.g. the future target")
    p.add_argument("--multi", metavar="NAME", default=None,
                   help="train ONE supernet over all the datasets (shared cells and alphas, a head each) named NAME")
    add_config_flags(p, SearchConfig, "search", skip=BUILD_SKIPS)
    add_config_flags(p, RaceConfig, "race", skip=tuple(f for f in RaceConfig.__dataclass_fields__
                                                        if f not in TRIAL_FIELDS))
    p.add_argument("--sequential", action="store_true",
                   help="pretrain in this process one source after another, without Ray Tune (no TensorBoard "
                        "run per source, no resume within a source)")
    p.add_argument("--rebuild", action="store_true",
                   help="pretrain every source again, also those whose zoo entry is already current (by default "
                        "a rerun only pretrains what is missing)")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue an interrupted build from its run directory: published sources are kept, the "
                        "others continue from their last epoch")
    add_shared_options(p)
    p.set_defaults(run=run_build)

    p = cmds.add_parser("list", parents=[parent], help="the published supernets")
    add_shared_options(p)
    p.set_defaults(run=run_list)

    p = cmds.add_parser("remove", parents=[parent], help="delete a zoo entry (all its versions)")
    p.add_argument("name")
    add_shared_options(p)
    p.set_defaults(run=run_remove)


def run_build(args: argparse.Namespace) -> None:
    from raynas.zoo.build import plan_jobs, run_jobs
    from raynas.zoo.tune_build import build_zoo, resume_build

    values, trial_values = given(args, "search"), given(args, "race")
    quiet = args.json
    if args.resume:
        changed = [f"--{k.replace('_', '-')}" for k, v in (("datasets", args.datasets), ("exclude", args.exclude),
                                                          ("multi", args.multi), ("sequential", args.sequential),
                                                          ("rebuild", args.rebuild)) if v]
        changed += sorted(f"--{k.replace('_', '-')}" for k in {**values, **trial_values})
        if changed:
            raise RaynasError(f"--resume takes the build's own settings; these options would change them: "
                              f"{', '.join(changed)}", "resume without them, or start a new build")
        report(resume_build(args.resume, open_workspace(args), verbose=not quiet, address=args.address).rows, quiet)
        return
    template = SearchConfig.from_json({"dataset": "template", **values})  # bad values fail before anything runs
    if "w_lr_min" in values:
        template.check_schedule()
    trials = build(RaceConfig, trial_values)
    exclude, named = set(split_names(args.exclude, "--exclude")), split_names(args.datasets, "--datasets")
    workspace = open_workspace(args)
    datasets = named or workspace.store.names()
    unknown = sorted(exclude - set(datasets)) if args.datasets else []
    if unknown:
        raise RaynasError(f"--exclude names datasets that are not being built: {', '.join(unknown)}")
    datasets = [d for d in datasets if d not in exclude]
    if not datasets:
        raise RaynasError("no datasets left to pretrain on", "check --datasets and --exclude")
    jobs, current = plan_jobs(datasets, template, workspace, multi=args.multi, rebuild=args.rebuild)
    if not quiet:
        if current:
            print(f"already current in the zoo (pass --rebuild to pretrain them again): {', '.join(current)}",
                  file=sys.stderr)
        if jobs and args.sequential:
            print(f"pretraining {len(jobs)} supernet(s) one after another in this process: "
                  f"{', '.join(j.name for j in jobs)}", file=sys.stderr)
    if not jobs:
        rows = []
    elif args.sequential:
        def done(row: dict) -> None:
            if not quiet:
                print(f"published {row['name']} ({row['kind']}, val acc {100 * row['accuracy']:.1f}%, "
                      f"{row['seconds']:.0f} s)", file=sys.stderr, flush=True)

        rows = run_jobs(jobs, on_done=done, verbose=not quiet)
    else:
        rows = build_zoo(jobs, workspace, trials=trials, verbose=not quiet, address=args.address).rows
    report(rows, quiet)


def report(rows: list[dict], quiet: bool) -> None:
    if quiet:
        print_json(rows)
        return
    print_table("published", ["name", "source", "kind", "val acc %", "epochs", "seconds"],
                [[r["name"], r["source"], r["kind"], round(100 * r["accuracy"], 1), r["epochs"], round(r["seconds"])]
                 for r in rows])


def run_list(args: argparse.Namespace) -> None:
    manifests, damaged = open_workspace(args).zoo.scan()
    rows = [{**m.summary(), "damaged": False} for m in manifests]
    rows += [{"name": name, "damaged": True, "error": problem,
              "fix": f"remove it with `raynas zoo remove {name}` and build or publish it again"}
             for name, problem in sorted(damaged.items())]
    if args.json:
        print_json(rows)
        return
    if not rows:
        print("the zoo is empty: build it with `raynas zoo build`")
        return
    good = [r for r in rows if not r["damaged"]]
    print_table(f"{len(rows)} zoo entries" + (f" ({len(damaged)} damaged)" if damaged else ""),
                ["name", "kind", "source", "val acc %", "algo", "epochs", "space", "created"],
                [[r["name"], r["kind"], r["source"], round(100 * r["accuracy"], 1) if r["accuracy"] is not None else "-",
                  r["algo"], r["epochs"], f"{r['in_channels']}ch C{r['channels']} {r['cells']} cells",
                  r["created"].replace("T", " ")[:16]] for r in good]
                + [[r["name"], "DAMAGED", "-", "-", "-", "-", "-", "-"] for r in rows if r["damaged"]])
    for r in rows:
        if r["damaged"]:
            print(f"{r['name']}: {r['error']}\n  fix: {r['fix']}")


def run_remove(args: argparse.Namespace) -> None:
    open_workspace(args).zoo.remove(args.name)
    if args.json:
        print_json({"removed": args.name})
    else:
        print(f"removed {args.name}")
