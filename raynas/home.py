"""Where raynas keeps datasets, the zoo, runs and caches (``--home``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raynas.errors import RaynasError

if TYPE_CHECKING:
    from raynas.storage import Storage


def default_home() -> Path:
    return Path(os.environ.get("RAYNAS_HOME") or Path.home() / ".raynas")


@dataclass(frozen=True)
class Home:
    """The directory layout under one home; folders are created on first use."""

    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None) -> "Home":
        return cls(Path(home).expanduser() if home else default_home())

    def _dir(self, name: str) -> Path:
        path = self.root / name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise RaynasError(f"{path} (or a folder above it) is a file, not a folder",
                              "move the file away, or pass another --home") from None
        except OSError as exc:
            raise RaynasError(f"cannot create {path}: {exc.strerror or exc}",
                              "check the permissions of the home, or pass another --home") from None
        return path

    @property
    def datasets(self) -> Path:
        return self._dir("datasets")

    @property
    def runs(self) -> Path:
        return self._dir("runs")

    @property
    def cache(self) -> Path:
        return self._dir("cache")

    @property
    def zoo(self) -> Path:
        return self._dir("zoo")

    @property
    def embeddings(self) -> Path:
        return self._dir("embeddings")

    def shared(self, storage: str | None = None) -> tuple["Storage", "Storage"]:
        """Zoo and embedding-store roots: under ``storage`` (a path or pyarrow.fs URI) if given,
        else under this home."""
        from raynas.storage import Storage

        if storage:
            root = Storage(storage)
            return root.child("zoo"), root.child("embeddings")
        return Storage(self.zoo), Storage(self.embeddings)
