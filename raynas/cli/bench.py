"""``raynas bench transfer``: the transfer benchmark (warm starts against scratch, leave-one-out)."""

from __future__ import annotations

import argparse
from pathlib import Path

from raynas.bench.config import QUICK, TransferBenchConfig
from raynas.cli.context import add_shared_options
from raynas.cli.options import given
from raynas.cli.output import print_json, print_table
from raynas.config import read_config_file


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", help="benchmarks of the method")
    kinds = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    t = kinds.add_parser("transfer", parents=[parent], help="warm-started search against search from scratch, "
                                                            "leave-one-out over a suite of datasets",
                         description="For each target, under each protocol (leave-one-dataset-out, leave-one-"
                                     "domain-out): a zoo without it (or without its domain), then scratch, ot, race, "
                                     "multi, random, farthest, zero-shot and random-genotype arms at one search "
                                     "budget, as Ray Tune trials; speed-ups, gains, retrained test accuracy, OT "
                                     "distance, the linear probe and LogME vs gain. Running it again with the same "
                                     "--out continues an interrupted run.")
    from raynas.cli.options import add_config_flags

    add_config_flags(t, TransferBenchConfig, "bench")
    t.add_argument("--quick", action="store_true",
                   help="a few targets, one seed, short budgets: about ten minutes on two cores (flags given "
                        "override it)")
    t.add_argument("--config", metavar="FILE", default=None, help="YAML or JSON file of benchmark fields; flags "
                                                                 "given override it")
    t.add_argument("--out", metavar="DIR", default=None,
                   help="results folder (default: <home>/bench/transfer, or transfer-quick with --quick)")
    add_shared_options(t)
    t.set_defaults(run=run_transfer_cmd)


def config_from_args(args: argparse.Namespace) -> TransferBenchConfig:
    values = dict(QUICK) if args.quick else {}
    if args.config:
        values.update(read_config_file(args.config))
    values.update(given(args, "bench"))
    return TransferBenchConfig.from_json(values)


def run_transfer_cmd(args: argparse.Namespace) -> None:
    from raynas.bench.transfer import run_transfer_bench
    from raynas.cli.context import configure_ray_from_args
    from raynas.home import Home

    configure_ray_from_args(args)
    config = config_from_args(args)
    out = Path(args.out) if args.out else Home.resolve(args.home).root / "bench" / (
        "transfer-quick" if args.quick else "transfer")
    result = run_transfer_bench(config, args.home, out, storage=args.storage, verbose=not args.json,
                                address=args.address)
    answer = result.answer
    protocols = answer["protocols"]
    if args.json:
        print_json({**{k: answer[k] for k in ("out", "targets", "timings", "files")},
                    "protocols": {p: {k: r[k] for k in ("per_arm", "goals", "search_vs_random", "distance_vs_gain")}
                                  for p, r in protocols.items()}})
        return
    from raynas.bench.config import PROTOCOLS
    from raynas.bench.speedup import format_speedup

    for protocol, result in protocols.items():
        rows = []
        for a in result["per_arm"]:
            se = a["speedup_epochs"]
            rows.append([a["arm"], format_speedup(se["median"]) if se else "no search",
                         "-" if not se or se.get("mean") is None else f"{se['mean']:.2f}x",
                         f"{se['never']}/{se['n']}" if se else "-",
                         "-" if a["arm"] in ("scratch", "random-genotype") else
                         f"{a['positive']}/{a.get('tied', 0)}/{a['negative']}",
                         "-" if a["median_gain"] is None else f"{100 * a['median_gain']:+.1f}",
                         "-" if a["median_retrain_test_acc"] is None else f"{100 * a['median_retrain_test_acc']:.1f}"])
        print_table(f"transfer benchmark, {PROTOCOLS[protocol]}, across targets",
                    ["arm", "median speed-up", "mean", "never reached", "positive/tied/negative",
                     "median gain (val pts)", "median retrained test %"], rows)
    d = answer["distance_vs_gain"]
    rho = "-" if d["rho"] is None else f"{d['rho']:+.2f} (p {d['p']:.2g}, {d['n']} pairs)"
    print(f"OT distance vs gain, Spearman rho: {rho}\ntables: {answer['files']['markdown']}\n"
          f"results: {answer['files']['results']}")
