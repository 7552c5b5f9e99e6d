"""``raynas search`` and ``raynas retrain``: one local search, and retraining its result."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from raynas.cli.context import add_shared_options, open_shared
from raynas.cli.output import print_json
from raynas.data import DatasetStore
from raynas.errors import RaynasError
from raynas.ot.encoders import create_encoder
from raynas.search.algorithms import ALGORITHMS
from raynas.search.config import SearchConfig
from raynas.search.loop import build_state, run_search
from raynas.search.results import new_run_dir, read_config, write_config
from raynas.search.retrain import RetrainConfig, retrain
from raynas.space.config import PRESETS
from raynas.space.genotype import Genotype
from raynas.transfer.mapping import TRANSFER_MODES
from raynas.transfer.sources import TRANSFERS
from raynas.transfer.warm_start import warm_start
from raynas.zoo.publish import publish_result


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[parent], help="run one architecture search on a dataset")
    p.add_argument("target", nargs="?", help="dataset name (omit with --resume)")
    p.add_argument("--transfer", default="scratch", metavar="HOW",
                   help=f"initial supernet: {', '.join(TRANSFERS.names())}, or a zoo entry's name (default scratch)")
    p.add_argument("--transfer-mode", default="weights+alphas",
                   help=f"what a warm start copies: {', '.join(TRANSFER_MODES.names())} (default weights+alphas)")
    p.add_argument("--alpha-temperature", type=float, default=1.0,
                   help="divide transferred alphas by this; > 1 softens them towards uniform (default 1)")
    p.add_argument("--distance", default="cascade", help="OT method ranking sources for --transfer ot (default cascade)")
    p.add_argument("--encoder", default="pixels", help="feature encoder of the OT embeddings (default pixels)")
    p.add_argument("--publish", action="store_true",
                   help="add the finished supernet and its embedding to the zoo, named after the dataset")
    p.add_argument("--algo", default="darts", help=f"one of: {', '.join(ALGORITHMS.names())} (default darts)")
    p.add_argument("--preset", default="cpu", help=f"size preset: {', '.join(PRESETS.names())} (default cpu)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--warmup-epochs", type=int, default=None,
                   help="epochs before alphas are updated (default: 0 for darts/darts2, 30%% for pcdarts/drnas)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--image-size", type=int, default=None, help="override the preset's image size")
    p.add_argument("--channels", type=int, default=None, help="override the preset's initial channels")
    p.add_argument("--cells", type=int, default=None, help="override the preset's number of cells")
    p.add_argument("--nodes", type=int, default=None, help="override the preset's intermediate nodes per cell")
    p.add_argument("--ops", default=None, help="comma-separated candidate ops (default: the 8 DARTS ops)")
    p.add_argument("--arch-lr", type=float, default=None,
                   help="Adam LR of the alphas (default: the paper's, x10 for the tiny and cpu presets)")
    p.add_argument("--partial-channels", type=int, default=None, help="PC-DARTS K (default 4, or less if needed)")
    p.add_argument("--max-steps", type=int, default=None, help="cap the steps per epoch (quick runs)")
    p.add_argument("--no-augment", action="store_true", help="no random crops/flips during the search")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--resume", metavar="RUN", default=None, help="continue a stopped search from its run directory")
    p.add_argument("--retrain", action="store_true", help="retrain the found architecture and report test accuracy")
    p.add_argument("--retrain-epochs", type=int, default=20)
    add_shared_options(p)
    p.set_defaults(run=run_search_cmd)

    p = sub.add_parser("retrain", parents=[parent],
                       help="train the discrete network of a genotype and evaluate it on the test split")
    p.add_argument("source", metavar="RUN_DIR_OR_GENOTYPE", help="a run directory or a genotype.json")
    p.add_argument("--dataset", default=None, help="dataset (default: the run's dataset)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells", type=int, default=8)
    p.add_argument("--image-size", type=int, default=None, help="default: the run's image size, else 16")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.025)
    p.add_argument("--auxiliary", action="store_true", help="add the auxiliary head at 2/3 depth")
    p.add_argument("--drop-path", type=float, default=0.0, help="final drop-path probability (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run_retrain_cmd)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    if not args.target:
        raise RaynasError("no target dataset given", "run `raynas search DATASET ...` or pass --resume RUN")
    ALGORITHMS.get(args.algo)
    PRESETS.get(args.preset)
    return SearchConfig(
        dataset=args.target, algo=args.algo, preset=args.preset, epochs=args.epochs,
        warmup_epochs=args.warmup_epochs, seed=args.seed, transfer=args.transfer, image_size=args.image_size,
        channels=args.channels, cells=args.cells, nodes=args.nodes, batch_size=args.batch_size,
        ops=tuple(o.strip() for o in args.ops.split(",")) if args.ops else None,
        partial_channels=args.partial_channels, a_lr=args.arch_lr, augment=not args.no_augment,
        max_steps_per_epoch=args.max_steps, device=args.device, transfer_mode=args.transfer_mode,
        alpha_temperature=args.alpha_temperature, distance=args.distance, encoder=args.encoder)


def run_search_cmd(args: argparse.Namespace) -> None:
    shared = open_shared(args)
    store = shared.store
    if args.resume:
        run_dir = Path(args.resume)
        config = read_config(run_dir)
        result = run_search(config, store=store, run_dir=run_dir, resume=True, verbose=not args.json)
    else:
        config = config_from_args(args)
        space = build_state(config, store).space  # configuration errors surface before a run directory exists
        if args.publish:  # and so do problems publishing would have after training
            encoder = create_encoder(config.encoder, storage=shared.embedding_storage, home=store.home,
                                     zoo=shared.zoo)
            shared.zoo.check_replaceable(config.dataset, "single", space.to_json())
        model, transfer = warm_start(config, store, shared.zoo, shared.embeddings, shared.embedding_storage)
        if not args.json and transfer["strategy"] != "scratch":
            print(describe_transfer(transfer), file=sys.stderr)
        run_dir = new_run_dir(store.home.runs, config)
        write_config(run_dir, config)
        result = run_search(config, store=store, run_dir=run_dir, initial_model=model, transfer=transfer,
                            verbose=not args.json)
    answer = json.loads((run_dir / "result.json").read_text())
    if args.retrain:
        rcfg = RetrainConfig(dataset=config.dataset, epochs=args.retrain_epochs, image_size=result.space.image_size,
                             seed=config.seed, device=config.device)
        answer["retrain"] = {k: v for k, v in retrain(result.genotype, rcfg, store, run_dir, verbose=not args.json
                                                      ).items() if k != "history"}
    if args.publish:
        if args.resume:
            encoder = create_encoder(config.encoder, storage=shared.embedding_storage, home=store.home,
                                     zoo=shared.zoo)
        answer["published"] = publish_result(result, shared.zoo, store, shared.embeddings, encoder).summary()
    if args.json:
        keys = ("run_dir", "status", "epochs_done", "final", "best_val_acc", "timings", "genotype", "genotype_text",
                "transfer", "retrain", "published")
        print_json({k: answer[k] for k in keys if k in answer})
        return
    print(f"\n{answer['genotype_text']}")
    if "retrain" in answer:
        r = answer["retrain"]
        print(f"retrained: test accuracy {100 * r['test_acc']:.1f}% (chance {100 * r['chance_acc']:.1f}%)")
    if "published" in answer:
        print(f"published to the zoo as '{answer['published']['name']}'")
    print(f"run directory: {run_dir}")


def describe_transfer(t: dict) -> str:
    if t.get("source") is None:
        why = f" ({t['note']})" if t.get("note") else ""
        return f"{t['strategy']}: searching from scratch{why}"
    how = f"{t['strategy']}: warm start from zoo entry '{t['source']}'"
    if t.get("distance") is not None:
        how += f" ({t['method']} distance {t['distance']:.4g})"
    tensors = t.get("tensors", {})

    def names(keys: list[str]) -> str:
        return "none" if not keys else ", ".join(keys) if len(keys) <= 3 else f"{len(keys)} tensors"

    return (f"{how}, {t['mode']}, alpha temperature {t['alpha_temperature']:g}; {tensors.get('copied', 0)} tensors "
            f"copied, adapted: {names(tensors.get('adapted', []))}, re-initialised (other shape): "
            f"{names(tensors.get('reinitialised', []))}")


def run_retrain_cmd(args: argparse.Namespace) -> None:
    store = DatasetStore(args.home)
    source = Path(args.source)
    out_dir, dataset, image_size = None, args.dataset, args.image_size
    if source.is_dir():
        genotype = Genotype.load(source / "genotype.json")
        out_dir = source
        result_path = source / "result.json"
        if result_path.is_file():
            done = json.loads(result_path.read_text())
            dataset = dataset or done["config"]["dataset"]
            image_size = image_size or done["space"]["image_size"]
    else:
        genotype = Genotype.load(source)
    if not dataset:
        raise RaynasError("no dataset given", "pass --dataset NAME")
    config = RetrainConfig(dataset=dataset, epochs=args.epochs, image_size=image_size or 16, channels=args.channels,
                           cells=args.cells, batch_size=args.batch_size, lr=args.lr, auxiliary=args.auxiliary,
                           drop_path=args.drop_path, seed=args.seed, device=args.device)
    result = retrain(genotype, config, store, out_dir)
    if args.json:
        print_json({k: v for k, v in result.items() if k != "history"})
    else:
        print(f"test accuracy {100 * result['test_acc']:.1f}% (chance {100 * result['chance_acc']:.1f}%), "
              f"{result['params']:,} parameters, {result['total_s']:.0f} s")
