"""``raynas export``: a trained model as a TorchScript or ONNX file that runs without raynas."""

from __future__ import annotations

import argparse
from pathlib import Path

from raynas.cli.output import print_json
from raynas.errors import RaynasError
from raynas.model.export import EXPORTERS, default_path, export_model, sample_input
from raynas.model.load import ZOO_PREFIX, load_card_and_network


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[parent], help="write a trained model as TorchScript or ONNX",
                       description="Writes the network (float images N x C x H x W in, logits out, any batch size) "
                                   "with its model card inside, runs the file once and compares it with PyTorch.")
    p.add_argument("source", metavar="RUN", help="a run directory after `raynas retrain`, a model directory, or "
                                                 "zoo:NAME[@VERSION]")
    p.add_argument("--format", required=True, choices=EXPORTERS.names(), help="file format")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="where to write it (default: model.pt / model.onnx in the model's folder; required for "
                        "zoo:NAME)")
    p.add_argument("--dataset", default=None, help="for zoo:NAME: whose head and preprocessing to use")
    p.add_argument("--storage", default=None, metavar="URI", help="root of the zoo (default: under --home)")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> None:
    from raynas.data import DatasetStore
    from raynas.model.artifact import model_dir

    zoo = args.source.startswith(ZOO_PREFIX)
    if zoo and args.out is None:
        raise RaynasError("exporting a zoo entry needs --out FILE", "e.g. --out supernet.pt")
    out = Path(args.out) if args.out else default_path(model_dir(args.source), args.format)
    network, card = load_card_and_network(args.source, dataset=args.dataset, home=args.home, storage=args.storage)
    answer = export_model(network, card, args.format, out, sample_input(card, DatasetStore(args.home)))
    if args.json:
        print_json(answer)
    else:
        print(f"wrote {answer['path']} ({answer['bytes'] / 2**20:.1f} MiB, {args.format}"
              f"{', opset ' + str(answer['opset']) if 'opset' in answer else ''}); checked on "
              f"{answer['checked_images']} images: largest logit difference from PyTorch {answer['max_abs_diff']:.2g}\n"
              f"input '{answer['input']['name']}': float32 {' x '.join(map(str, answer['input']['shape']))}, "
              f"preprocessed as the card inside the file says (mean {_rounded(card.preprocess['mean'])}, std "
              f"{_rounded(card.preprocess['std'])})")


def _rounded(values: list[float]) -> str:
    return ", ".join(f"{v:.4f}" for v in values)
