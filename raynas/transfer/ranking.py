"""Ranking zoo sources for a target by OT distance between their stored embeddings.

The target is embedded once (and cached in the embedding store); each source's embedding
comes from the store, or is computed from its dataset when that is here and unchanged
(same content hash as the zoo entry's source).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from raynas.data.store import DatasetStore
from raynas.errors import RaynasError
from raynas.zoo.manifest import ZooManifest


class NoSource(RaynasError):
    """The zoo has nothing that can serve this target (as opposed to a broken zoo or bad input)."""


@dataclass
class ZooRanking:
    ranking: Any  # raynas.ot.distances.Ranking, nearest first
    entries: dict[str, ZooManifest]  # source dataset -> zoo entry
    encoder_version: str
    embed_s: float  # embedding the target (0 when it was cached)
    missing: list[str] = field(default_factory=list)  # sources without an embedding of their data, left out

    def rows(self) -> list[dict[str, Any]]:
        return [{"rank": r.rank, "source": self.entries[r.name].name, "dataset": r.name, "distance": r.distance,
                 "method": r.method} for r in self.ranking]


def rank_zoo(target: str, entries: Sequence[ZooManifest], store: DatasetStore, embeddings, encoder,
             method: str = "cascade", top: int | None = None) -> ZooRanking:
    """Rank single-dataset zoo ``entries`` by distance to dataset ``target``.

    One query to the embedding store (or its actor) ranks all sources where they are stored;
    only sources missing from the store are embedded here, from their datasets.
    """
    from raynas.ot.embedding import EmbeddingConfig

    by_dataset = {m.source: m for m in entries if m.kind == "single"}
    if not by_dataset:
        raise NoSource("the zoo has no single-dataset supernets to rank",
                          f"build some with `raynas zoo build --exclude {target}`")
    t0 = time.perf_counter()
    target_embedding = embeddings.ensure(store.open(target), encoder, EmbeddingConfig())
    embed_s = time.perf_counter() - t0
    stored = embeddings.content_hashes(encoder.version, list(by_dataset))
    missing = []
    for dataset, m in by_dataset.items():
        trained_on = m.sources[0].content_hash
        if stored.get(dataset) == trained_on:
            continue
        # absent, or embedded from other content than the supernet saw (the dataset was re-imported)
        if store.exists(dataset) and store.info(dataset).content_hash == trained_on:
            embeddings.ensure(store.open(dataset), encoder, EmbeddingConfig())
        else:
            missing.append(dataset)
    ranking = embeddings.rank(target_embedding, [d for d in by_dataset if d not in missing], method, top)
    if ranking is None:
        raise NoSource(f"no zoo source has a '{encoder.version}' embedding and their datasets are not here",
                          "rebuild the zoo with `raynas zoo build` (it stores embeddings), or use --transfer multi")
    return ZooRanking(ranking, by_dataset, encoder.version, embed_s, missing)
