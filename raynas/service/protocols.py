"""The one interface of the zoo and of the embedding store, wherever they are served from.

:class:`~raynas.zoo.store.Zoo` and :class:`~raynas.ot.store.EmbeddingStore` read storage
directly; :class:`~raynas.service.handles.ActorZoo` and
:class:`~raynas.service.handles.ActorEmbeddings` call the Ray actors that wrap them. Code that
uses a zoo or an embedding store is typed with these protocols, so it never knows (or
branches on) which one it got. The tests check that all four classes conform.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from raynas.data.format import ImageDataset
    from raynas.ot.distances import Ranking
    from raynas.ot.embedding import DatasetEmbedding, EmbeddingConfig
    from raynas.ot.encoders import Encoder
    from raynas.zoo.manifest import ZooManifest


@runtime_checkable
class ZooHandle(Protocol):
    def names(self) -> list[str]: ...

    def list(self) -> list["ZooManifest"]: ...

    def scan(self) -> tuple[list["ZooManifest"], dict[str, str]]: ...

    def manifest(self, name: str, version: str | None = None) -> "ZooManifest": ...

    def load_weights(self, name: str, version: str | None = None) -> tuple[dict[str, np.ndarray], "ZooManifest"]: ...

    def check_replaceable(self, name: str, kind: str, space: dict) -> None: ...

    def publish(self, manifest: "ZooManifest", weights: dict[str, np.ndarray]) -> "ZooManifest": ...

    def remove(self, name: str) -> None: ...


@runtime_checkable
class EmbeddingHandle(Protocol):
    def versions(self) -> list[str]: ...

    def names(self, encoder_version: str) -> list[str]: ...

    def get(self, dataset: str, encoder_version: str) -> "DatasetEmbedding | None": ...

    def content_hashes(self, encoder_version: str, datasets: list[str]) -> dict[str, str]: ...

    def put(self, embedding: "DatasetEmbedding") -> str: ...

    def remove(self, dataset: str, encoder_version: str | None = None) -> list[str]: ...

    def rank(self, target: "DatasetEmbedding", sources: list[str], method: str = "cascade",
             top: int | None = None) -> "Ranking | None": ...

    def ensure(self, ds: "ImageDataset", encoder: "Encoder", config: "EmbeddingConfig") -> "DatasetEmbedding": ...
