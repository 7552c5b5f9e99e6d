"""``raynas search`` (a race of warm-started searches in Ray Tune) and ``raynas retrain``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from raynas.cli.context import add_shared_options, open_workspace
from raynas.cli.options import RETRAIN_FLAGS, add_config_flags, build, given, merged
from raynas.cli.output import print_json, print_table
from raynas.config import quote, read_config_file
from raynas.data import DatasetStore
from raynas.errors import RaynasError
from raynas.experiment import ExperimentConfig
from raynas.race.config import RaceConfig
from raynas.search.config import SearchConfig
from raynas.search.results import new_folder
from raynas.search.retrain import RetrainConfig, retrain
from raynas.space.genotype import Genotype

SECTIONS = ("search", "race", "retrain")
ANSWER_KEYS = ("run_dir", "status", "dataset", "candidates", "leaderboard", "winner", "epochs_done", "final", "best_val_acc", "timings",
               "genotype", "genotype_text", "transfer", "notes", "tensorboard", "retrain", "published")


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[parent], help="race warm-started architecture searches on a dataset",
                       description="Races the zoo sources nearest to the target (by OT distance) as Ray Tune "
                                   "trials, stops trailing ones early (ASHA), derives the winner's architecture "
                                   "and optionally retrains and publishes it.")
    p.add_argument("target", nargs="?", help="dataset name (omit with --resume)")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML or JSON file with any of the sections search, race, retrain and the key publish "
                        "(a run's config.json works); flags given override it")
    add_config_flags(p, SearchConfig, "search")
    add_config_flags(p, RaceConfig, "race")
    add_config_flags(p, ExperimentConfig, "experiment", skip=SECTIONS)
    p.add_argument("--retrain", action="store_true", default=argparse.SUPPRESS,
                   help="retrain the winner's architecture and report test accuracy")
    add_config_flags(p, RetrainConfig, "retrain", skip=tuple(f for f in RetrainConfig.__dataclass_fields__
                                                              if f not in RETRAIN_FLAGS), rename=RETRAIN_FLAGS)
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue an interrupted race from its run directory (finished trials are kept)")
    add_shared_options(p)
    p.set_defaults(run=run_search_cmd)

    p = sub.add_parser("retrain", parents=[parent],
                       help="train the discrete network of a genotype and evaluate it on the test split")
    p.add_argument("source", metavar="RUN_DIR_OR_GENOTYPE", help="a run directory or a genotype.json")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where the trained model (model/), retrain.json and the per-epoch checkpoint go (default: "
                        "the run directory; for a genotype.json, a new folder under the home's runs/). Running the "
                        "same retrain again after a kill continues from the last epoch")
    add_config_flags(p, RetrainConfig, "retrain")
    p.set_defaults(run=run_retrain_cmd)


def experiment_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment: the config file's values (if any), overridden by the flags given."""
    data = read_config_file(args.config) if args.config else {}
    unknown = sorted((k for k in data if k not in {*SECTIONS, "publish"}), key=str)
    if unknown:
        shown = ", ".join(k if isinstance(k, str) and len(k) <= 50 else quote(k) for k in unknown[:10])
        raise RaynasError(f"config file {args.config}: unknown key(s) {shown}",
                          f"use the sections {', '.join(SECTIONS)} and the key publish")
    for section in ("search", "race"):  # a run's config.json has retrain: null when it did not retrain
        if section in data and data[section] is None:
            raise RaynasError(f"config file {args.config}: the section '{section}' is empty (null), not a mapping "
                              "of field names to values", f"give its fields under '{section}', or leave it out")
    if not isinstance(data.get("publish", False), bool):
        raise RaynasError(f"config file {args.config}: publish must be true or false, got {quote(data['publish'])}")
    search = merged(data.get("search"), args, "search")
    if args.target:
        search["dataset"] = args.target
    elif "dataset" not in search:
        raise RaynasError("no target dataset given", "run `raynas search DATASET ...` or pass --resume RUN")
    retrain_values = merged(data.get("retrain"), args, "retrain")
    wants_retrain = getattr(args, "retrain", False) or data.get("retrain") is not None or given(args, "retrain")
    publish = given(args, "experiment").get("publish", data.get("publish", False))
    search_config = SearchConfig.from_json(search)
    if "w_lr_min" in search:  # the default floor under a low --w-lr alone is accepted as before
        search_config.check_schedule()
    return ExperimentConfig(search_config, RaceConfig.from_json(merged(data.get("race"), args, "race")),
                            build(RetrainConfig, retrain_values, RETRAIN_FLAGS) if wants_retrain else None, publish)


def run_search_cmd(args: argparse.Namespace) -> None:
    from raynas.race.race import check_resume_matches, resume_race, run_race

    quiet = args.json
    if args.resume:
        changes = {f"--{k.split('.', 1)[1].replace('_', '-')}" for k in vars(args) if "." in k}
        if getattr(args, "retrain", False):
            changes.add("--retrain")
        if args.config:
            changes.add("--config")
        check_resume_matches(args.resume, args.target, dict.fromkeys(changes))
        workspace = open_workspace(args)
        result = resume_race(args.resume, workspace, verbose=not quiet, address=args.address)
    else:
        config = experiment_from_args(args)
        workspace = open_workspace(args)
        result = run_race(config, workspace, verbose=not quiet, address=args.address)
    answer = result.answer
    if quiet:
        print_json({k: answer[k] for k in ANSWER_KEYS if k in answer})
        return
    print_leaderboard(answer)
    print(f"\nwinner: {answer['winner']['source']} (trial {answer['winner']['trial']})\n{answer['genotype_text']}")
    if "retrain" in answer:
        r = answer["retrain"]
        print(f"retrained: test accuracy {100 * r['test_acc']:.1f}% (chance {100 * r['chance_acc']:.1f}%); "
              f"trained model in {r['model']['path']} (raynas predict/serve/export {answer['run_dir']})")
    if "published" in answer:
        print(f"published to the zoo as '{answer['published']['name']}'")
    print(f"run directory: {answer['run_dir']}\nTensorBoard: {answer['tensorboard']}")


def print_leaderboard(answer: dict[str, Any]) -> None:
    from raynas.race.report import LEADERBOARD_COLUMNS, leaderboard_table

    print_table(f"leaderboard ({answer['dataset']['name']})", LEADERBOARD_COLUMNS,
                leaderboard_table(answer["leaderboard"]))


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise RaynasError(f"cannot read {what} {path}: {exc}", "give an intact run directory or genotype.json") from None


def run_retrain_cmd(args: argparse.Namespace) -> None:
    store = DatasetStore(args.home)
    source = Path(args.source)
    values = given(args, "retrain")
    out_dir = None
    if source.is_dir():
        out_dir, genotype = source, Genotype.load(source / "genotype.json")
        result_path = source / "result.json"
        if result_path.is_file():
            done = _read_json(result_path, "the run's result")
            try:
                values.setdefault("dataset", done["config"]["search"]["dataset"] if "search" in done["config"]
                                  else done["config"]["dataset"])
                values.setdefault("image_size", done["space"]["image_size"])
            except (KeyError, TypeError):
                raise RaynasError(f"{result_path} lacks the run's dataset or space",
                                  "pass --dataset and --image-size, or give an intact run directory") from None
    elif source.is_file():
        genotype = Genotype.load(source)
    else:
        raise RaynasError(f"{source} not found", "give a run directory or a genotype.json")
    config = RetrainConfig.from_json(values)
    if not config.dataset:
        raise RaynasError("no dataset given", "pass --dataset NAME")
    store.info(config.dataset)  # an unknown dataset fails before a folder is made
    if args.out:
        out_dir = Path(args.out)
        if out_dir.exists() and not out_dir.is_dir():
            raise RaynasError(f"--out {out_dir} is a file", "give a folder")
    elif out_dir is None:
        out_dir = new_folder(store.home.runs, f"retrain-{config.dataset}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "genotype.json").is_file():
        genotype.save(out_dir / "genotype.json")
    result = retrain(genotype, config, store, out_dir, verbose=not args.json)
    if args.json:
        print_json({k: v for k, v in result.items() if k != "history"})
    else:
        print(f"test accuracy {100 * result['test_acc']:.1f}% (chance {100 * result['chance_acc']:.1f}%), "
              f"{result['params']:,} parameters, {result['total_s']:.0f} s\nmodel: {result['model']['path']} "
              f"(use it: raynas predict {out_dir} IMAGES, raynas serve {out_dir}, raynas export {out_dir} "
              "--format onnx)")

