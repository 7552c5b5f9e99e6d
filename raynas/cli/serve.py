"""``raynas serve``: a trained model behind HTTP (Ray Serve), until Ctrl-C."""

from __future__ import annotations

import argparse
import importlib
import logging
import time

from raynas.cli.context import add_shared_options, configure_ray_from_args
from raynas.cli.output import print_json
from raynas.errors import RaynasError


def add_parser(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[parent], help="serve a trained model over HTTP (Ray Serve)",
                       description="Starts a Ray Serve deployment of the model: POST an image to /predict (as the "
                                   "body, or as the form field 'file'; ?top_k=N) for its class and probabilities, "
                                   "GET /healthz for the model. Concurrent requests share forward passes. Runs "
                                   "until Ctrl-C. Needs Ray Serve: pip install 'raynas[serve]'.")
    p.add_argument("source", metavar="RUN",
                   help="a run directory after `raynas retrain`, a model directory or zoo:NAME")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--replicas", type=int, default=1,
                   help="model replicas, each a Ray actor with its own copy (default 1)")
    p.add_argument("--gpus-per-replica", type=float, default=0, metavar="N",
                   help="GPUs per replica, fractions allowed (default 0: CPU)")
    p.add_argument("--dataset", default=None, metavar="NAME",
                   help="for zoo:NAME: the dataset whose head and preprocessing to use")
    p.add_argument("--max-upload-mb", type=float, default=10, metavar="N",
                   help="larger uploads are refused with 413 (default 10)")
    add_shared_options(p)
    p.set_defaults(run=run_serve_cmd)


def run_serve_cmd(args: argparse.Namespace) -> None:
    """Serve until interrupted; Ctrl-C takes the app (and Serve, when nothing else uses it) down
    again, and the command ends as any interrupted raynas command does. A failed start cleans
    up after itself, and never touches an app it did not start."""
    if args.storage:
        from raynas.storage import Storage

        Storage(args.storage).check_root()
    configure_ray_from_args(args)
    try:
        serving = importlib.import_module("raynas.model.serve")
    except ImportError as exc:
        raise RaynasError(f"Ray Serve is not installed ({exc})", "pip install 'raynas[serve]'") from None
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # its progress lines would bury the answer
    url = serving.start_server(args.source, port=args.port, host=args.host, replicas=args.replicas,
                               gpus_per_replica=args.gpus_per_replica, dataset=args.dataset, home=args.home,
                               storage=args.storage, address=args.address, max_upload_mb=args.max_upload_mb)
    try:
        example = f"curl -s --data-binary @IMAGE.png {url}/predict"
        if args.json:
            print_json({"url": url, "predict": f"{url}/predict", "healthz": f"{url}/healthz", "example": example,
                        "replicas": args.replicas})
        else:
            print(f"serving {args.source} at {url} ({args.replicas} replica(s)); Ctrl-C stops it\n"
                  f"  predict: {example}\n"
                  f"           curl -s -F file=@IMAGE.png '{url}/predict?top_k=3'\n"
                  f"  health:  curl -s {url}/healthz", flush=True)
        while True:
            time.sleep(3600)
    finally:
        serving.stop_server()
