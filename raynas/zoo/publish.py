"""Turning a finished search into a zoo entry, with the OT embedding of its dataset.

Used by ``raynas zoo build`` (pretraining) and by ``raynas search --publish`` (the zoo grows
with every finished search).
"""

from __future__ import annotations

from typing import Any

from raynas.data.store import DatasetStore
from raynas.search.loop import SearchResult
from raynas.zoo.manifest import SourceDataset, ZooManifest
from raynas.zoo.store import state_to_numpy


def manifest_for(result: SearchResult, name: str, store: DatasetStore,
                 embedding_version: str | None = None) -> ZooManifest:
    cfg = result.config
    sources = [SourceDataset(d["name"], d["content_hash"], store.info(d["name"]).num_classes)
               for d in result.datasets]
    return ZooManifest(
        name=name, kind="multi" if cfg.multi else "single", sources=tuple(sources), space=result.space.to_json(),
        algo=cfg.algo, epochs=len(result.history), val_acc=result.history[-1]["val_acc"] if result.history else None,
        embedding_version=embedding_version,
        warm_start=_provenance(result.transfer), search=cfg.to_json(),
        run=str(result.run_dir) if result.run_dir else None)


def _provenance(transfer: dict[str, Any] | None) -> dict[str, Any] | None:
    """The transfer record without its timing, so republishing the same result changes nothing."""
    if not transfer or transfer.get("strategy") == "scratch":
        return None
    return {k: v for k, v in transfer.items() if k != "selection_s"}


def embed_source(dataset: str, store: DatasetStore, embeddings, encoder) -> str:
    """Make sure the embedding store holds ``dataset``'s embedding; returns its encoder version."""
    from raynas.ot.embedding import EmbeddingConfig

    embeddings.ensure(store.open(dataset), encoder, EmbeddingConfig())
    return encoder.version


def publish_result(result: SearchResult, zoo, store: DatasetStore, embeddings=None, encoder=None,
                   name: str | None = None) -> ZooManifest:
    """Publish the supernet of ``result``; single-dataset results also get their embedding stored."""
    version = None
    if embeddings is not None and encoder is not None and not result.config.multi:
        version = embed_source(result.config.dataset, store, embeddings, encoder)
    manifest = manifest_for(result, name or result.config.dataset, store, version)
    return zoo.publish(manifest, state_to_numpy(result.model.state_dict()))

