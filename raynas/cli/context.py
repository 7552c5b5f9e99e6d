"""What zoo-aware commands share: the home, zoo and embedding storage, an optional Ray cluster."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from raynas.data import DatasetStore
from raynas.storage import Storage


def add_shared_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=None, metavar="URI",
                   help="root of the zoo and embedding store: a path or pyarrow.fs URI such as s3://bucket/raynas "
                        "(default: under --home)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to connect to (e.g. auto or ray://HOST:10001); the zoo and embedding store "
                        "are then served by Ray actors (default: $RAY_ADDRESS, else direct storage access)")


@dataclass
class Shared:
    store: DatasetStore
    zoo: Any  # Zoo or ActorZoo: the same methods
    embeddings: Any  # EmbeddingStore or its actor handle
    embedding_storage: Storage
    zoo_storage: Storage


def open_shared(args: argparse.Namespace) -> Shared:
    """Connect to Ray when an address is given (or set in $RAY_ADDRESS), then open zoo and embeddings."""
    import os

    from raynas.service import open_embeddings, open_zoo

    store = DatasetStore(args.home)
    if getattr(args, "address", None) or os.environ.get("RAY_ADDRESS"):
        from raynas.ray_session import ensure_ray

        ensure_ray(args.address)
    zoo_storage, emb_storage = store.home.shared(getattr(args, "storage", None))
    return Shared(store, open_zoo(zoo_storage), open_embeddings(emb_storage), emb_storage, zoo_storage)
