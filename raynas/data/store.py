"""The dataset store: Parquet files under ``<home>/datasets``, built-ins built on first use."""

from __future__ import annotations

from pathlib import Path

from raynas.data.builtin import BUILTINS
from raynas.data.format import DatasetInfo, ImageDataset, make_dataset, read_dataset, read_info, write_dataset
from raynas.data.validate import check_name
from raynas.errors import RaynasError
from raynas.home import Home
from raynas.progress import progress


class DatasetStore:
    """Lists, loads, builds and saves datasets in one home."""

    def __init__(self, home: Home | str | Path | None = None):
        self.home = home if isinstance(home, Home) else Home.resolve(home)

    def path(self, name: str) -> Path:
        return self.home.datasets / f"{check_name(name)}.parquet"

    def stored_names(self) -> list[str]:
        return sorted(p.stem for p in self.home.datasets.glob("*.parquet"))

    def names(self) -> list[str]:
        """Built-ins first (in suite order), then imported datasets alphabetically."""
        return list(BUILTINS) + [n for n in self.stored_names() if n not in BUILTINS]

    def exists(self, name: str) -> bool:
        return name in BUILTINS or self.path(name).is_file()

    def _missing(self, name: str) -> RaynasError:
        return RaynasError(f"dataset '{name}' not found in {self.home.datasets}",
                           f"import it with `raynas data import PATH --name {name}`, or pick one of: "
                           f"{', '.join(self.names())}")

    def ensure_builtin(self, name: str) -> Path:
        """Build (or rebuild, if its builder version changed) a built-in dataset."""
        spec = BUILTINS.get(name)
        path = self.path(name)
        if self._is_current(name):
            return path
        raw = spec.build()
        ds = make_dataset(name, raw.images, raw.labels, raw.class_names, domain=spec.domain,
                          provenance=dict(raw.provenance, builder=f"raynas built-in '{name}'",
                                          description=spec.description),
                          allow_flip=spec.allow_flip, version=spec.version, seed=spec.seed)
        return write_dataset(ds, path)

    def ensure_builtins(self, names: list[str] | None = None) -> None:
        todo = [n for n in (names or list(BUILTINS)) if not self._is_current(n)]
        for name in progress(todo, "building built-in datasets"):
            self.ensure_builtin(name)

    def _is_current(self, name: str) -> bool:
        """A built-in's cache is current when it reads and its builder version matches."""
        path = self.path(name)
        try:
            return path.is_file() and read_info(path).version == BUILTINS.get(name).version
        except RaynasError:  # unreadable cache: rebuild it
            return False

    def info(self, name: str) -> DatasetInfo:
        if name in BUILTINS:
            self.ensure_builtin(name)
        elif not self.path(name).is_file():
            raise self._missing(name)
        return read_info(self.path(name))

    def infos(self) -> list[DatasetInfo]:
        self.ensure_builtins()
        return [read_info(self.path(n)) for n in self.names()]

    def load(self, name: str, verify: bool = False) -> ImageDataset:
        self.info(name)
        return read_dataset(self.path(name), verify=verify)

    def save(self, ds: ImageDataset, overwrite: bool = False) -> Path:
        name = ds.info.name
        if name in BUILTINS:
            raise RaynasError(f"'{name}' is the name of a built-in dataset", "choose another --name")
        path = self.path(name)
        if path.exists() and not overwrite:
            raise RaynasError(f"dataset '{name}' already exists",
                              "choose another --name, or pass --overwrite to replace it")
        return write_dataset(ds, path)
