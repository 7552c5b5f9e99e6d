"""What zoo-aware commands share: the workspace (home, zoo, embeddings) and an optional Ray cluster."""

from __future__ import annotations

import argparse

from raynas.storage import Storage
from raynas.workspace import Workspace


def add_shared_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=None, metavar="URI",
                   help="root of the zoo, the embedding store and Tune's race results: a path or pyarrow.fs URI "
                        "such as s3://bucket/raynas (default: under --home)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to connect to (e.g. auto or ray://HOST:10001); the zoo and embedding store "
                        "are then served by Ray actors (default: $RAY_ADDRESS unless it is a job server's "
                        "http:// address, else direct storage access)")
    p.add_argument("--dashboard", action="store_true",
                   help="start Ray's dashboard with the local Ray, on 127.0.0.1, and print its URL (ignored, with "
                        "a note, when connecting to a cluster, whose dashboard is the cluster's)")


def configure_ray_from_args(args: argparse.Namespace) -> None:
    """How Ray starts for this command, if it does: with the dashboard for ``--dashboard``, and
    without the tasks' output on this process's stdout when that is one ``--json`` answer. Starts
    nothing: call it before anything may start Ray."""
    from raynas.ray_session import configure_ray

    configure_ray(dashboard=getattr(args, "dashboard", False), forward_logs=not getattr(args, "json", False))


def open_workspace(args: argparse.Namespace) -> Workspace:
    """Check the ``--storage`` root, connect to Ray when an address is given (or set in
    $RAY_ADDRESS, but not a job server's http:// one), then open the workspace. The storage is
    checked first, so a missing bucket, a file or a folder in /proc fails in seconds, before Ray
    starts or a run folder is made."""
    from raynas.ray_session import cluster_address, ensure_ray

    configure_ray_from_args(args)
    storage = getattr(args, "storage", None)
    if storage:
        Storage(storage).check_root()
    address = cluster_address(getattr(args, "address", None))
    if address:
        ensure_ray(address)
    return Workspace.open(args.home, storage)
