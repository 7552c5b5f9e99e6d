"""A workspace: the home (datasets, runs) plus the zoo and embedding store a run uses.

Opened once per process from two plain strings, the home and the optional shared storage
root, so a Ray task or Tune trial on another node opens the same workspace from the same
names (only names travel, never data). With Ray connected the zoo and embeddings are served
by their actors (:mod:`raynas.service`); otherwise storage is read directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from raynas.data.store import DatasetStore
from raynas.service.protocols import EmbeddingHandle, ZooHandle
from raynas.storage import Storage


@dataclass
class Workspace:
    store: DatasetStore
    zoo: ZooHandle
    embeddings: EmbeddingHandle
    zoo_storage: Storage
    embedding_storage: Storage
    storage: str | None = None  # the shared storage root it was opened with (None: under the home)

    @classmethod
    def open(cls, home: str | Path | None = None, storage: str | None = None,
             use_actors: bool | None = None) -> "Workspace":
        """``use_actors``: None = through the Ray actors when Ray is connected, else directly."""
        from raynas.service import open_embeddings, open_zoo

        store = DatasetStore(home, storage)
        zoo_storage, embedding_storage = store.home.shared(storage)
        return cls(store, open_zoo(zoo_storage, use_actors), open_embeddings(embedding_storage, use_actors),
                   zoo_storage, embedding_storage, storage)

    @property
    def home(self) -> Path:
        return self.store.home.root

    def locations(self) -> tuple[str, str | None]:
        """(home, storage) as absolute names, to reopen this workspace in another process."""
        storage = self.storage
        if storage and "://" not in storage:
            storage = str(Path(storage).expanduser().resolve())
        return str(self.home.expanduser().resolve()), storage

    def encoder(self, name: str):
        """The OT feature encoder ``name``, with its fitted state in this workspace's storage."""
        from raynas.ot.encoders import create_encoder

        return create_encoder(name, storage=self.embedding_storage, home=self.store.home, zoo=self.zoo)
