"""The embedding store: one Parquet file per dataset and encoder version, on any Storage.

Layout: ``<storage>/<encoder version>/<dataset>.parquet`` (fitted encoder state lives beside
it under ``encoders/``). Files are written atomically, so concurrent readers, other machines
and a Ray actor wrapping this class see either the old or the new embedding. Methods take
and return plain values (names, numpy-backed embeddings) so they cross process boundaries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from raynas.data.format import ImageDataset
from raynas.data.validate import check_name
from raynas.errors import RaynasError
from raynas.ot.embedding import DatasetEmbedding, EmbeddingConfig, embed_dataset, from_parquet_bytes, to_parquet_bytes
from raynas.ot.encoders import ENCODER_DIR, Encoder
from raynas.storage import Storage

if TYPE_CHECKING:
    from raynas.ot.distances import Ranking

SUFFIX = ".parquet"


class EmbeddingStore:
    """Get, put, list and remove embeddings; :meth:`ensure` embeds only what is missing or stale."""

    def __init__(self, storage: Storage | str):
        self.storage = storage if isinstance(storage, Storage) else Storage(storage)

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.storage.uri!r})"

    @staticmethod
    def _key(dataset: str, encoder_version: str) -> tuple[str, str]:
        if not encoder_version or "/" in encoder_version or encoder_version.startswith(".") \
                or encoder_version == ENCODER_DIR:
            raise RaynasError(f"'{encoder_version}' is not an encoder version", "pass encoder.version")
        return encoder_version, f"{check_name(dataset)}{SUFFIX}"

    def path(self, dataset: str, encoder_version: str) -> str:
        return self.storage.path(*self._key(dataset, encoder_version))

    def versions(self) -> list[str]:
        """Encoder versions with at least one stored embedding."""
        return [v for v in self.storage.listdir() if v != ENCODER_DIR and self.names(v)]

    def names(self, encoder_version: str) -> list[str]:
        """Datasets embedded under ``encoder_version``, sorted."""
        self._key("x", encoder_version)
        return [f[: -len(SUFFIX)] for f in self.storage.listdir(encoder_version, dirs=False) if f.endswith(SUFFIX)]

    def get(self, dataset: str, encoder_version: str) -> DatasetEmbedding | None:
        """The stored embedding, or None when there is none; damaged or foreign files raise."""
        key = self._key(dataset, encoder_version)
        try:
            data = self.storage.read_bytes(*key)
        except FileNotFoundError:
            return None
        source = f"embedding file {self.storage.path(*key)}"
        embedding = from_parquet_bytes(data, source)
        if (embedding.dataset, embedding.encoder_version) != (dataset, encoder_version):
            raise RaynasError(f"{source} holds '{embedding.dataset}' under encoder {embedding.encoder_version}, "
                              f"not '{dataset}' under {encoder_version}",
                              "delete the file (it was copied or renamed by hand); it is embedded again on next use")
        return embedding

    def stamp(self, dataset: str, encoder_version: str) -> tuple[float, int] | None:
        """(modification time, size) of the stored file, None when absent: tells caches it changed."""
        return self.storage.stat(*self._key(dataset, encoder_version))

    def content_hashes(self, encoder_version: str, datasets: list[str]) -> dict[str, str]:
        """The dataset content hash each stored embedding was made from, read from the file footers
        only (absent datasets are left out): enough to tell stale embeddings without loading them."""
        out = {}
        for dataset in datasets:
            path = self.path(dataset, encoder_version)
            try:
                with self.storage.fs.open_input_file(path) as fh:
                    meta = pq.read_schema(fh).metadata or {}
            except FileNotFoundError:
                continue
            except (pa.ArrowException, OSError) as exc:
                raise RaynasError(f"cannot read embedding file {path}: {exc}",
                                  "delete the file; it is embedded again on next use") from exc
            out[dataset] = meta.get(b"content_hash", b"").decode()
        return out

    def all(self, encoder_version: str) -> list[DatasetEmbedding]:
        """Every embedding stored under ``encoder_version``, in name order."""
        return [e for e in (self.get(n, encoder_version) for n in self.names(encoder_version)) if e is not None]

    def put(self, embedding: DatasetEmbedding) -> str:
        """Store (or replace) an embedding; writing the same embedding twice changes nothing."""
        return self.storage.write_bytes(to_parquet_bytes(embedding),
                                        *self._key(embedding.dataset, embedding.encoder_version))

    def remove(self, dataset: str, encoder_version: str | None = None) -> list[str]:
        """Delete a dataset's embedding under one version (or all); returns the versions removed."""
        versions = [encoder_version] if encoder_version else self.versions()
        removed = []
        for version in versions:
            key = self._key(dataset, version)
            if self.storage.exists(*key):
                self.storage.delete(*key)
                removed.append(version)
        return removed

    def ensure(self, ds: ImageDataset, encoder: Encoder,
               config: EmbeddingConfig = EmbeddingConfig()) -> DatasetEmbedding:
        return ensure_embedding(self, ds, encoder, config)

    def rank(self, target: DatasetEmbedding, sources: list[str], method: str = "cascade",
             top: int | None = None) -> Ranking | None:
        """Rank the stored embeddings of ``sources`` (missing ones are skipped) against ``target``."""
        from raynas.ot.distances import rank_sources  # POT: imported only when ranking

        found = [e for e in (self.get(s, target.encoder_version) for s in sources) if e is not None]
        return rank_sources(target, found, method, top) if found else None


def is_current(embedding: DatasetEmbedding | None, ds: ImageDataset, config: EmbeddingConfig) -> bool:
    """Stored for this very content (hash) and config."""
    return embedding is not None and embedding.content_hash == ds.info.content_hash and embedding.config == config


def ensure_embedding(embeddings, ds: ImageDataset, encoder: Encoder,
                     config: EmbeddingConfig = EmbeddingConfig()) -> DatasetEmbedding:
    """The embedding of ``ds`` under ``encoder`` from ``embeddings`` (a store or its actor handle):
    the stored one when its content hash and config match, else a fresh one, which is stored.

    The caller computes it, since it holds the images; a store or actor only keeps it.
    """
    try:
        stored = embeddings.get(ds.info.name, encoder.version)
    except RaynasError:  # a damaged cache entry is derived data: replace it
        stored = None
    if is_current(stored, ds, config):
        return stored  # type: ignore[return-value]
    embedding = embed_dataset(ds, encoder, config)
    embeddings.put(embedding)
    return embedding
