"""The dataset store: datasets under ``<home>/datasets``, built-ins built on first use.

With a shared storage root (``--storage s3://bucket/raynas``), imported datasets also live in
``<storage>/datasets`` (:mod:`raynas.data.shared`): imports upload there, and a store on any node
finds them there and keeps a checked copy in its home before it reads images.

A dataset is one Parquet file ``<name>.parquet`` or, when larger than
:data:`raynas.data.format.SHARD_BYTES` of pixels, a folder ``<name>/`` of Parquet shards with a
``_dataset.json`` (see :mod:`raynas.data.format`); every method takes both. Either is written
under a hidden temporary name and moved into place in one step, so readers never see half a
dataset and a killed import leaves only a temporary entry, removed by the next command.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from raynas.data.builtin import BUILTINS
from raynas.data.format import (DatasetInfo, ImageDataset, dataset_footers, make_dataset, read_dataset, read_info,
                                 write_entry)
from raynas.data.validate import NAME_PATTERN, check_name
from raynas.errors import RaynasError
from raynas.home import Home
from raynas.progress import progress
from raynas.storage import TMP_MARK, exclusive_entry, remove_stale_temps


@dataclass(frozen=True)
class DatasetEntry:
    """One line of ``data list``: a dataset's info, or why its file cannot be used."""

    name: str
    info: DatasetInfo | None = None
    error: RaynasError | None = None


class DatasetStore:
    """Lists, loads, builds and saves datasets in one home, and on a shared storage root if given."""

    def __init__(self, home: Home | str | Path | None = None, storage: str | None = None):
        from raynas.data.shared import SharedDatasets
        from raynas.storage import Storage

        self.home = home if isinstance(home, Home) else Home.resolve(home)
        self.shared = SharedDatasets(Storage(storage).child("datasets")) if storage else None

    def _shared_info(self, name: str) -> DatasetInfo | None:
        """The info of an imported dataset on the shared storage; None without one or when not there."""
        if self.shared is None or name in BUILTINS:
            return None
        return self.shared.info(check_name(name))

    def local_path(self, name: str) -> Path:
        """:meth:`path`, with a dataset of the shared storage fetched into this home first when the
        copy here is missing or older (another content hash): what readers of images call."""
        shared = self._shared_info(name)
        if shared is not None:
            path = self.path(name)
            try:
                current = path.exists() and read_info(path).content_hash == shared.content_hash
            except RaynasError:  # a damaged copy is fetched again
                current = False
            if not current:
                with self._write_errors(name):
                    self.shared.fetch(name, self.folder / f"{name}.parquet", self.folder / name)
        elif name not in BUILTINS and not self.path(name).exists():
            raise self._missing(name)
        return self.path(name)

    @property
    def folder(self) -> Path:
        """``<home>/datasets``, created on first use; a home that cannot hold it is a clear error."""
        root = self.home.root
        if root.exists() and not root.is_dir():
            raise RaynasError(f"the raynas home {root} is a file, not a folder",
                              "pass --home (or set RAYNAS_HOME to) a folder, or move the file away")
        try:
            return self.home.datasets
        except OSError as exc:
            raise RaynasError(f"cannot use {root / 'datasets'} as the dataset folder: {exc.strerror or exc}",
                              "pass --home (or set RAYNAS_HOME to) a folder you can write to") from exc

    def path(self, name: str) -> Path:
        """The dataset's folder of shards ``<name>/`` when there is one, else ``<name>.parquet``
        (a file, or a folder when written there directly; it need not exist). Either is what
        Parquet readers (``ray.data.read_parquet``) take."""
        folder = self.folder / check_name(name)
        return folder if folder.is_dir() else self.folder / f"{name}.parquet"

    def _files(self) -> list[Path]:
        """Dataset files and folders, hidden ones (writes in progress) left out."""
        return sorted(p for p in self.folder.iterdir() if not p.name.startswith(".")
                      and (p.is_dir() or (p.suffix == ".parquet" and p.is_file())))

    @staticmethod
    def _name(path: Path) -> str:
        """The dataset name of an entry: a file or folder ``<name>.parquet`` (a folder so named is
        what a direct write to :meth:`path` of a large dataset makes), else a folder ``<name>``."""
        return path.stem if path.suffix == ".parquet" else path.name

    def stored_names(self) -> list[str]:
        """Imported datasets: in this home and, with a shared storage root, there."""
        here = {self._name(p) for p in self._files() if NAME_PATTERN.match(self._name(p))}
        return sorted(here | set(self.shared.names() if self.shared else []))

    def names(self) -> list[str]:
        """Built-ins first (in suite order), then imported datasets alphabetically."""
        return list(BUILTINS) + [n for n in self.stored_names() if n not in BUILTINS]

    def exists(self, name: str) -> bool:
        return name in BUILTINS or self.path(name).exists() or self._shared_info(name) is not None

    def _missing(self, name: str) -> RaynasError:
        return RaynasError(f"dataset '{name}' not found in {self.folder}",
                           f"import it with `raynas data import PATH --name {name}`, or pick one of: "
                           f"{', '.join(self.names())}")

    def _write(self, ds: ImageDataset, overwrite: bool) -> Path:
        """Write one dataset (file or folder), as one atomic step; file-system failures become clear errors."""
        with self._write_errors(ds.info.name), self._claim(ds.info.name, overwrite) as tmp:
            write_entry(ds, tmp)
        return self.path(ds.info.name)

    @contextlib.contextmanager
    def _claim(self, name: str, overwrite: bool):
        """A temporary path to write dataset ``name`` at; what is written there, a file or a folder,
        becomes ``<name>.parquet`` or ``<name>/`` at the end, replacing either only with
        ``overwrite`` (without, an existing one is FileExistsError)."""
        check_name(name)
        with exclusive_entry(self.folder / f"{name}.parquet", overwrite=overwrite,
                             dir_final=self.folder / name) as tmp:
            yield tmp

    def remove(self, name: str) -> Path:
        """Delete a stored dataset, file or folder (and its copy on the shared storage); a folder is
        first renamed to a hidden name, so no reader ever sees it half deleted. Returns where it was."""
        path = self.path(name)
        shared = self.shared is not None and name not in BUILTINS and self.shared.remove(check_name(name))
        if not path.exists():
            if shared:
                return Path(self.shared.storage.child(name).uri)
            raise RaynasError(f"dataset '{name}' not found", "`raynas data list` shows what is stored")
        if path.is_dir() and not path.is_symlink():
            aside = path.with_name(f".{path.name}.removed{TMP_MARK}{uuid.uuid4().hex[:8]}")
            os.rename(path, aside)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            path.unlink()
        return path

    @contextlib.contextmanager
    def _write_errors(self, name: str):
        """An existing name (written without ``overwrite``) and file-system failures during a
        write of dataset ``name`` become clear errors."""
        try:
            yield
        except FileExistsError:
            raise RaynasError(f"dataset '{name}' already exists (another import may have saved it first)",
                              "choose another --name, or pass --overwrite to replace it") from None
        except OSError as exc:
            raise RaynasError(f"cannot write dataset '{name}' to {self.folder}: {exc.strerror or exc}",
                              "make the folder writable and free some disk space, or pass --home with "
                              "another folder") from exc

    def check_writable(self) -> None:
        """Refuse a read-only dataset folder up front (before reading thousands of files),
        and remove what killed imports left behind."""
        folder = self.folder
        if not os.access(folder, os.W_OK | os.X_OK):
            raise RaynasError(f"the dataset folder {folder} is read-only",
                              f"make it writable (chmod u+w {folder}) or pass --home with a folder you can write to")
        remove_stale_temps(folder)
        if self.shared is not None:
            self.shared.storage.check_writable()

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
        return self._write(ds, overwrite=True)

    def ensure_builtins(self, names: list[str] | None = None) -> None:
        todo = [n for n in (names or list(BUILTINS)) if not self._is_current(n)]
        for name in progress(todo, "building built-in datasets"):
            self.ensure_builtin(name)

    def _is_current(self, name: str) -> bool:
        """A built-in's cache is current when it reads and its builder version matches."""
        path = self.path(name)
        try:
            return path.exists() and read_info(path).version == BUILTINS.get(name).version
        except RaynasError:  # unreadable cache: rebuild it
            return False

    def info(self, name: str) -> DatasetInfo:
        """From the footer or index alone (of the shared storage's copy, when there is one)."""
        if name in BUILTINS:
            self.ensure_builtin(name)
        else:
            shared = self._shared_info(name)
            if shared is not None:
                return shared
            if not self.path(name).exists():
                raise self._missing(name)
        return read_info(self.path(name))

    def check_unchanged(self, hashes: dict[str, str], since: str) -> None:
        """Refuse when a dataset's content hash differs from ``hashes`` (recorded ``since`` then):
        continuing a search on changed data would mix two datasets in one result."""
        for name, then in hashes.items():
            now = self.info(name).content_hash
            if now != then:
                raise RaynasError(f"dataset '{name}' changed since {since} (content hash {then} then, {now} now)",
                                  f"restore '{name}' as it was, or start a new search")

    def infos(self) -> list[DatasetInfo]:
        self.ensure_builtins()
        return [self.info(n) for n in self.names()]

    def entries(self) -> list[DatasetEntry]:
        """Every dataset with its info or the reason it cannot be read: one damaged file
        (or a built-in that cannot be built) does not hide the others."""
        remove_stale_temps(self.folder)
        failed: dict[str, RaynasError] = {}
        for name in progress([n for n in BUILTINS if not self._is_current(n)], "building built-in datasets"):
            try:
                self.ensure_builtin(name)
            except RaynasError as exc:
                failed[name] = exc
        out = []
        for name in self.names():
            if name in failed:
                out.append(DatasetEntry(name, error=failed[name]))
                continue
            try:
                shared = self._shared_info(name)
                if shared is not None:
                    out.append(DatasetEntry(name, info=shared))
                    continue
                path = self.path(name)
                info = read_info(path)
                if path.is_dir():
                    dataset_footers(path, info)  # every shard there, with the rows and columns listed
                out.append(DatasetEntry(name, info=info))
            except RaynasError as exc:
                out.append(DatasetEntry(name, error=exc))
        for path in self._files():
            if not NAME_PATTERN.match(self._name(path)):
                what = "folder" if path.is_dir() else "file"
                out.append(DatasetEntry(self._name(path), error=RaynasError(
                    f"{path} is not named like a dataset", "rename it to lower-case letters, digits, '.', '_' "
                    f"or '-' (starting with a letter or digit){' followed by .parquet' if what == 'file' else ''}, "
                    f"or delete the {what}")))
        return out

    def open(self, name: str) -> "StoredDataset":
        """The dataset read in parts (labels whole, images where asked): for readers that need a
        sample or only the info, in memory that does not grow with the dataset."""
        from raynas.data.stored import StoredDataset

        path = self.local_path(name)
        return StoredDataset(path, self.info(name))

    def load(self, name: str, verify: bool = False) -> ImageDataset:
        self.info(name)
        return read_dataset(self.local_path(name), verify=verify)

    def _refuse_shared_name(self, name: str, overwrite: bool) -> None:
        if not overwrite and self._shared_info(name) is not None:
            raise RaynasError(f"dataset '{name}' already exists on the shared storage {self.shared.storage.uri}",
                              "choose another --name, or pass --overwrite to replace it")

    def _upload(self, name: str, overwrite: bool) -> None:
        """Put a dataset just written here on the shared storage too, when there is one. A failed
        upload leaves no index there, so no reader finds the shards it wrote; the next upload
        replaces them."""
        if self.shared is None:
            return
        try:
            self.shared.upload(name, self.path(name), overwrite=overwrite)
        except (RaynasError, OSError) as exc:
            why = exc.problem if isinstance(exc, RaynasError) else (exc.strerror or str(exc))
            raise RaynasError(f"dataset '{name}' is stored in the home {self.folder}, but its upload to the shared "
                              f"storage {self.shared.storage.uri} failed: {why}",
                              "once the storage is reachable, run the same command again with --overwrite (what the "
                              "failed upload left there is replaced; nodes cannot see it meanwhile)") from None

    def save_streamed(self, plan, overwrite: bool = False, **options) -> tuple[Path, DatasetInfo]:
        """Store a planned import of image files (:class:`raynas.data.importers.FileImport`),
        streamed chunk by chunk into the file (or shards); as :meth:`save`, one atomic step at the end."""
        name = plan.name
        if name in BUILTINS:
            raise RaynasError(f"'{name}' is the name of a built-in dataset", "choose another --name")
        self._refuse_shared_name(name, overwrite)
        with self._write_errors(name), self._claim(name, overwrite) as tmp:
            info = plan.write(tmp, **options)
        remove_stale_temps(self.folder)
        self._upload(name, overwrite)
        return self.path(name), info

    def migrate(self, name: str) -> str | None:
        """Rewrite an imported dataset written by an older version in the current layout (bounded
        row groups, shards), with the same content hash, in one atomic step; returns what was
        out of date, or None when nothing was (the dataset is then left untouched)."""
        from raynas.data.relayout import Relayout, layout_problem

        if name in BUILTINS:
            raise RaynasError(f"'{name}' is a built-in dataset: it is rebuilt, not migrated",
                              "name an imported dataset (`raynas data list`)")
        stored = self.open(name)  # a dataset of the shared storage is fetched first: in today's layout
        problem = layout_problem(stored)
        if problem is None:
            return None
        with self._write_errors(name), self._claim(name, overwrite=True) as tmp:
            Relayout(name, stored).write(tmp)
            if self.info(name).content_hash != stored.info.content_hash:  # re-imported meanwhile: keep that
                raise RaynasError(f"dataset '{name}' was replaced while it was migrated: left as the new one is",
                                  f"run `raynas data migrate {name}` again")
        remove_stale_temps(self.folder)
        return problem

    def save(self, ds: ImageDataset, overwrite: bool = False) -> Path:
        """Store an imported dataset; the existence check and the write are one atomic step."""
        name = ds.info.name
        if name in BUILTINS:
            raise RaynasError(f"'{name}' is the name of a built-in dataset", "choose another --name")
        self._refuse_shared_name(name, overwrite)
        path = self._write(ds, overwrite=overwrite)
        remove_stale_temps(self.folder)
        self._upload(name, overwrite)
        return path
