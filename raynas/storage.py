"""Crash-safe storage: everything is written under a temporary name and moved into place.

A reader therefore sees either the old file or the complete new one, never half a file,
and a failed write leaves what was stored untouched.

Two layers:

* :func:`atomic_path` and friends for local files (datasets, run directories);
* :class:`Storage`, a root directory on a local path or any ``pyarrow.fs`` URI (``s3://``,
  ``gs://``, ``hdfs://``, NFS mounts), for what several machines share: the zoo and the
  embedding store. Single files are written to a temporary key and moved (a rename locally,
  an atomic put on object stores).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.fs as pafs

from raynas.errors import RaynasError


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it over ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(final: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(final, text.encode("utf-8"))


TMP_MARK = ".tmp-"


class Storage:
    """A root directory on a local path or a ``pyarrow.fs`` URI; paths below it are '/'-joined.

    Names that start with '.' or contain :data:`TMP_MARK` are never listed, so readers do
    not see writes in progress.
    """

    def __init__(self, root: str | os.PathLike):
        root = str(root)
        if "://" in root:
            try:
                self.fs, path = pafs.FileSystem.from_uri(root)
            except (pa.ArrowException, ValueError, OSError) as exc:
                raise RaynasError(f"cannot open storage '{root}': {exc}",
                                  "give a local path or a URI pyarrow understands (file://, s3://, gs://, hdfs://)"
                                  ) from exc
        else:
            self.fs, path = pafs.LocalFileSystem(), str(Path(root).expanduser().resolve())
        self.uri, self.root = root, path.rstrip("/")

    def __repr__(self) -> str:
        return f"Storage({self.uri!r})"

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *(p.strip("/") for p in parts if p)])

    def child(self, *parts: str) -> "Storage":
        """The storage rooted at a sub-directory; a URI keeps its query (endpoint, region...)."""
        sub = Storage.__new__(Storage)
        sub.fs, sub.root = self.fs, self.path(*parts)
        base, sep, query = self.uri.partition("?")
        sub.uri = "/".join([base.rstrip("/"), *parts]) + sep + query
        return sub

    # -- reading ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _io(self, path: str) -> Iterator[None]:
        """Storage failures (network, credentials) as a RaynasError that names the storage;
        FileNotFoundError passes through, since callers treat a missing file themselves."""
        try:
            yield
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise RaynasError(f"cannot access {path} on storage '{self.uri}': {exc}",
                              "check the storage path or URI, its credentials and the network") from exc

    def exists(self, *parts: str) -> bool:
        path = self.path(*parts)
        with self._io(path):
            return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def read_bytes(self, *parts: str) -> bytes:
        """The file's bytes; FileNotFoundError when it does not exist."""
        path = self.path(*parts)
        with self._io(path), self.fs.open_input_stream(path) as fh:
            return fh.read()

    def listdir(self, *parts: str, dirs: bool = True) -> list[str]:
        """Names of the sub-directories (or files) directly below; a missing directory gives []."""
        want = pafs.FileType.Directory if dirs else pafs.FileType.File
        path = self.path(*parts)
        with self._io(path):
            infos = self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return sorted(i.base_name for i in infos
                      if i.type == want and not i.base_name.startswith(".") and TMP_MARK not in i.base_name)

    def stat(self, *parts: str) -> tuple[float, int] | None:
        """(modification time, size) of a file, or None when it does not exist."""
        path = self.path(*parts)
        with self._io(path):
            info = self.fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            return None
        return (info.mtime.timestamp() if info.mtime else 0.0, info.size or 0)

    # -- writing ----------------------------------------------------------------------
    def write_bytes(self, data: bytes, *parts: str) -> str:
        """Write atomically: to a temporary name, then moved over the final one."""
        final = self.path(*parts)
        parent, name = final.rsplit("/", 1)
        tmp = f"{parent}/.{name}{TMP_MARK}{uuid.uuid4().hex[:8]}"
        with self._io(final):
            self.fs.create_dir(parent, recursive=True)
            try:
                with self.fs.open_output_stream(tmp) as fh:
                    fh.write(data)
                self.fs.move(tmp, final)
            finally:
                if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                    self.fs.delete_file(tmp)
        return final

    def delete(self, *parts: str) -> None:
        """Delete a file or a whole directory; a missing one (or one deleted meanwhile) is not an error."""
        path = self.path(*parts)
        with self._io(path):
            kind = self.fs.get_file_info(path).type
            try:
                if kind == pafs.FileType.Directory:
                    self.fs.delete_dir(path)
                elif kind == pafs.FileType.File:
                    self.fs.delete_file(path)
            except FileNotFoundError:
                pass
