"""Digests of the Tune state a race wrote, kept in its run directory, checked on every read.

``Tuner.restore`` unpickles ``tuner.pkl``, decodes pickles embedded in
``experiment_state-*.json`` and loads the searcher's and callbacks' ``*.pkl``; the result grid
unpickles a trial's ``error.pkl``. On a cluster those files live in shared storage, which
anyone with write access to the bucket can change, so unpickling them as found would run their
code on every machine that resumes. The run directory lives in the home, which is trusted.

So Tune gets the storage through :func:`ledger_filesystem`, a pyarrow filesystem that wraps the
real one: every such file the driver writes is hashed as it is written and its sha256 recorded
in the run directory (``tune_digests.json``); every such file Tune reads is read whole, checked
against that record and handed over from memory, so the bytes unpickled are the bytes checked
(nothing can be swapped in between). :func:`verify_ledger` checks the whole experiment before a
resume starts, to refuse with a clear message before Ray starts.

Trial checkpoints need no digest: raynas writes them as safetensors and JSON and loads them
without pickle (:mod:`raynas.search.checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from raynas.errors import RaynasError
from raynas.storage import Storage, atomic_write_text

LEDGER_FILE = "tune_digests.json"
LEDGER_VERSION = 1
_LOCK = threading.Lock()  # the driver's syncer thread and its main thread both record


def watched(relpath: str) -> bool:
    """Files Tune may deserialise: pickles and JSON state at the experiment's root, and pickles
    one level down (the trials' folders)."""
    parts = relpath.split("/")
    name = parts[-1]
    if len(parts) == 1:
        return name.endswith((".pkl", ".json"))
    return len(parts) == 2 and name.endswith(".pkl")


def read_ledger(run_dir: str | Path) -> dict[str, str]:
    path = Path(run_dir) / LEDGER_FILE
    if not path.is_file():
        raise RaynasError(f"{run_dir} has no record of the Tune state its race wrote ({LEDGER_FILE}), so the state "
                          "in storage cannot be checked before it is loaded",
                          "start the search again (races of raynas before this record existed cannot be resumed)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())):
            raise ValueError("'files' is not a mapping of names to digests")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise RaynasError(f"{path} is damaged ({exc})", "start the search again") from None
    return files


def _update_ledger(run_dir: str, relpath: str, digest: str | None) -> None:
    """Record (or, with ``None``, forget) one file's digest; the file is rewritten atomically."""
    path = Path(run_dir) / LEDGER_FILE
    with _LOCK:
        files = read_ledger(run_dir) if path.is_file() else {}
        if digest is None:
            files.pop(relpath, None)
        else:
            files[relpath] = digest
        atomic_write_text(path, json.dumps({"version": LEDGER_VERSION, "files": files}, indent=2, sort_keys=True))


def _refused(storage_uri: str, parts: list[str]) -> RaynasError:
    return RaynasError(
        f"the race's Tune state in {storage_uri} cannot be restored: it differs from what this home recorded when "
        f"the race wrote it ({'; '.join(parts)}); nothing was loaded from it, since restoring unpickles these files",
        "if the storage was tampered with, or the race's driver was killed while saving its state, start the "
        "search again (the zoo and datasets are not affected)")


def _listing(fs: pafs.FileSystem, root: str) -> list[str]:
    """Relative paths of the watched files below ``root``."""
    prefix = root.rstrip("/") + "/"
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=True))
    out = []
    for info in infos:
        if info.path.startswith(prefix) and watched(info.path[len(prefix):]):
            if info.type != pafs.FileType.File:  # a folder named like a state file would be picked by Tune
                raise _refused(root, [f"not a file: {info.path[len(prefix):]}"])
            out.append(info.path[len(prefix):])
    return sorted(out)


def _sha256(fs: pafs.FileSystem, path: str) -> tuple[bytes, str]:
    with fs.open_input_stream(path) as fh:
        data = fh.read()
    return data, hashlib.sha256(data).hexdigest()


def verify_ledger(run_dir: str | Path, storage: Storage, name: str) -> None:
    """Refuse the resume unless every watched file of the experiment is exactly as recorded."""
    recorded = read_ledger(run_dir)
    root = storage.path(name)
    with storage._io(root):
        present = _listing(storage.fs, root)
        now = {rel: _sha256(storage.fs, f"{root}/{rel}")[1] for rel in present}
    changed = sorted(k for k in recorded.keys() & now.keys() if recorded[k] != now[k])
    unknown = sorted(now.keys() - recorded.keys())
    missing = sorted(recorded.keys() - now.keys())
    parts = [f"{what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
             for what, names in (("changed", changed), ("not written by this race", unknown), ("missing", missing))
             if names]
    if parts:
        raise _refused(storage.child(name).uri, parts)


class _HashingWriter:
    """A writable file that hashes what passes through and records the digest when closed."""

    def __init__(self, stream, on_close):
        self.stream, self.on_close, self.sha = stream, on_close, hashlib.sha256()
        self.closed = False

    def write(self, data) -> int:
        self.sha.update(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.stream.close()
            self.on_close(self.sha.hexdigest())


class LedgerHandler(pafs.FileSystemHandler):
    """Passes everything to ``inner``, but records what is written to, and checks what is read
    from, the watched files of the experiment at ``root``. Picklable (Tune sends its storage
    filesystem to the trials, which only write checkpoints through it)."""

    def __init__(self, inner: pafs.FileSystem, root: str, run_dir: str, uri: str):
        self.inner, self.root, self.run_dir, self.uri = inner, root.rstrip("/"), str(run_dir), uri

    def _watched(self, path: str) -> str | None:
        """The path relative to the experiment root when it is a watched file, else None."""
        prefix = self.root + "/"
        if path.startswith(prefix) and watched(path[len(prefix):]):
            return path[len(prefix):]
        return None

    def __eq__(self, other):
        if isinstance(other, LedgerHandler):
            return (self.inner, self.root, self.run_dir) == (other.inner, other.root, other.run_dir)
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def get_type_name(self) -> str:
        return f"raynas-ledger+{self.inner.type_name}"

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def get_file_info(self, paths):
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.inner.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        self.inner.delete_dir_contents("/", accept_root_dir=True)

    def delete_file(self, path):
        self.inner.delete_file(path)
        self._forget(path)

    def move(self, src, dest):
        digest = self._source_digest(src)
        self.inner.move(src, dest)
        self._record_copy(dest, digest)
        self._forget(src)

    def _forget(self, path: str) -> None:
        rel = self._watched(path)
        if rel is not None:
            _update_ledger(self.run_dir, rel, None)

    def copy_file(self, src, dest):
        digest = self._source_digest(src)
        self.inner.copy_file(src, dest)
        self._record_copy(dest, digest)

    def _source_digest(self, src: str) -> str | None:
        """The digest of a watched source, checked before it is moved or copied."""
        return hashlib.sha256(self._check(src)).hexdigest() if self._watched(src) is not None else None

    def _record_copy(self, dest: str, digest: str | None) -> None:
        rel = self._watched(dest)
        if rel is not None:  # a checked source's digest, else what arrived
            _update_ledger(self.run_dir, rel, digest or _sha256(self.inner, dest)[1])

    def _check(self, path: str) -> bytes:
        """The bytes of a watched file, refused unless they match the record."""
        rel = self._watched(path)
        data, digest = _sha256(self.inner, path)
        recorded = read_ledger(self.run_dir).get(rel)
        if recorded is None:
            raise _refused(self.uri, [f"not written by this race: {rel}"])
        if recorded != digest:
            raise _refused(self.uri, [f"changed: {rel}"])
        return data

    def open_input_stream(self, path):
        return self._open_for_reading(path, self.inner.open_input_stream)

    def open_input_file(self, path):
        return self._open_for_reading(path, self.inner.open_input_file)

    def _open_for_reading(self, path: str, open_inner):
        """A watched file is served from the bytes just checked; any other straight from ``inner``."""
        if self._watched(path) is None:
            return open_inner(path)
        return pa.BufferReader(self._check(path))

    def open_output_stream(self, path, metadata):
        stream = self.inner.open_output_stream(path, metadata=metadata)
        rel = self._watched(path)
        if rel is None:
            return stream
        return pa.PythonFile(_HashingWriter(stream, lambda digest: _update_ledger(self.run_dir, rel, digest)),
                             mode="w")

    def open_append_stream(self, path, metadata):
        if self._watched(path) is not None:  # Tune never appends to its state in storage
            raise _refused(self.uri, [f"an append to {self._watched(path)}"])
        return self.inner.open_append_stream(path, metadata=metadata)


def ledger_filesystem(storage: Storage, name: str, run_dir: str | Path) -> pafs.FileSystem:
    """The filesystem to give Tune for the experiment ``name`` below ``storage``, recording and
    checking its state in ``run_dir``."""
    run_dir = str(Path(run_dir).expanduser().resolve())
    return pafs.PyFileSystem(LedgerHandler(storage.fs, storage.path(name), run_dir, storage.child(name).uri))
