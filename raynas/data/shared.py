"""Datasets on shared storage (``--storage s3://bucket/raynas``): imported once, read on every node.

An import with a shared storage root writes the dataset in the home as always, then uploads it to
``<storage>/datasets/``: a single file as one object, a folder's shards first and its
``_dataset.json`` last, so a reader never finds an index whose shards are not all there. Another
node (a Tune trial, a Ray job's driver) needs no shared POSIX home: it reads a dataset's info from
the index (or a single file's footer) alone, and before it reads images it fetches a copy into its
own home, file by file in bounded memory, checked against the shared content hash and fetched
again when the shared dataset has changed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raynas.data import format as fmt
from raynas.data.validate import NAME_PATTERN
from raynas.errors import RaynasError
from raynas.progress import progress
from raynas.storage import Storage, exclusive_entry


class SharedDatasets:
    """The datasets below one shared root (``<storage>/datasets``)."""

    def __init__(self, storage: Storage):
        self.storage = storage

    def __repr__(self) -> str:
        return f"SharedDatasets({self.storage.uri!r})"

    def _where(self, name: str) -> Path:
        """How errors name a shared dataset (a path-like name on the storage)."""
        return Path(self.storage.child(name).uri)

    def _is_folder(self, name: str) -> bool | None:
        """True for a folder of shards, False for a single file, None when there is no such dataset."""
        if self.storage.exists(name, fmt.INDEX_FILE):
            return True
        if self.storage.exists(f"{name}.parquet"):
            return False
        return None

    def names(self) -> list[str]:
        files = [n[:-len(".parquet")] for n in self.storage.listdir(dirs=False) if n.endswith(".parquet")]
        folders = [d for d in self.storage.listdir() if self.storage.exists(d, fmt.INDEX_FILE)]
        return sorted(n for n in set(files + folders) if NAME_PATTERN.match(n))

    def exists(self, name: str) -> bool:
        return self._is_folder(name) is not None

    def info(self, name: str) -> fmt.DatasetInfo | None:
        """The info of a shared dataset, read from its index or its footer; None when it is not there."""
        folder = self._is_folder(name)
        if folder is None:
            return None
        if folder:
            return self._index(name)[0]
        path = self.storage.path(f"{name}.parquet")
        where = self._where(f"{name}.parquet")
        try:
            with self.storage.fs.open_input_file(path) as fh:
                meta = pq.read_metadata(fh)
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            raise RaynasError(f"cannot read the shared dataset file {where}: {exc}",
                              "check the storage's credentials and network, or upload the dataset again") from exc
        return fmt._checked_info(meta.schema.to_arrow_schema(), meta.num_rows, where)

    def _index(self, name: str) -> tuple[fmt.DatasetInfo, list[tuple[str, int]], bytes]:
        """A shared folder's info, shards (checked names and rows) and the index's bytes."""
        text = self.storage.read_bytes(name, fmt.INDEX_FILE)
        return (*fmt.parse_index(text, self._where(name)), text)

    # -- moving datasets ----------------------------------------------------------------
    def upload(self, name: str, local: Path, overwrite: bool = False) -> None:
        """Upload the dataset at ``local`` (a file or a folder of shards) as ``name``: shards
        first, the index last; an existing shared dataset is replaced only with ``overwrite``."""
        if self.exists(name) and not overwrite:
            raise RaynasError(f"dataset '{name}' already exists on the shared storage {self.storage.uri}",
                              "choose another --name, or pass --overwrite to replace it")
        self.remove(name)
        if local.is_dir():
            shards = sorted(p for p in local.iterdir() if p.suffix == ".parquet")
            for shard in progress(shards, f"uploading dataset '{name}'"):
                self.storage.upload(shard, name, shard.name)
            self.storage.write_bytes((local / fmt.INDEX_FILE).read_bytes(), name, fmt.INDEX_FILE)
        else:
            self.storage.upload(local, f"{name}.parquet")

    def fetch(self, name: str, local: Path, dir_local: Path) -> fmt.DatasetInfo:
        """Copy the shared dataset ``name`` into this node's home (to ``local`` as a file, or to
        ``dir_local`` as a folder), replacing an older copy; refused when the copy does not match
        the shared index (the dataset was replaced while it was fetched)."""
        info = self.info(name)
        if info is None:
            raise RaynasError(f"dataset '{name}' is not on the shared storage {self.storage.uri}",
                              f"import it with `raynas data import SOURCE --name {name} --storage ...`")
        with exclusive_entry(local, overwrite=True, dir_final=dir_local) as tmp:
            if self._is_folder(name):
                _, shards, index = self._index(name)
                tmp.mkdir()
                for shard, _ in progress(shards, f"fetching dataset '{name}'"):
                    self.storage.download(tmp / shard, name, shard)
                (tmp / fmt.INDEX_FILE).write_bytes(index)
            else:
                self.storage.download(tmp, f"{name}.parquet")
            copied = fmt.read_info(tmp)
            if copied.content_hash != info.content_hash:
                raise RaynasError(f"dataset '{name}' changed on the shared storage while it was fetched",
                                  "run the command again")
        return copied

    def remove(self, name: str) -> bool:
        """Delete the shared dataset (its index first, so no reader finds half of it); whether it was there."""
        there = self.exists(name)
        with contextlib.suppress(FileNotFoundError):
            self.storage.delete(name, fmt.INDEX_FILE)
        self.storage.delete(name)
        self.storage.delete(f"{name}.parquet")
        return there

