"""Digests of the Tune state a race wrote, kept in its run directory, checked before a resume.

``Tuner.restore`` unpickles ``tuner.pkl``, decodes pickles embedded in
``experiment_state-*.json`` and loads the searcher's and callbacks' ``*.pkl``; a trial's
``error.pkl`` is unpickled when its result is read. On a cluster those files live in shared
storage, which anyone with write access to the bucket can change, so unpickling them as found
would run their code on every machine that resumes. The run directory lives in the home, which
is trusted: while the race runs, :class:`LedgerCallback` records the sha256 of every such file
there, and :func:`verify_ledger` refuses a resume whose files differ, before anything is read.

Trial checkpoints need no digest: raynas writes them as safetensors and JSON and loads them
without pickle (:mod:`raynas.search.checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from ray.tune import Callback

from raynas.errors import RaynasError
from raynas.storage import Storage, atomic_write_text

LEDGER_FILE = "tune_digests.json"
LEDGER_VERSION = 1


def watched(relpath: str) -> bool:
    """Files Tune may deserialise on resume: pickles and JSON state at the experiment's root,
    and pickles one level down (the trials' folders)."""
    parts = relpath.split("/")
    name = parts[-1]
    if len(parts) == 1:
        return name.endswith((".pkl", ".json"))
    return len(parts) == 2 and name.endswith(".pkl")


class _Digests:
    """sha256 of the watched files of one Tune experiment, re-read only when a file changes."""

    def __init__(self, storage: Storage, name: str):
        self.storage, self.name = storage, name
        self.root = storage.path(name)
        self._seen: dict[str, tuple[tuple[int, int], str]] = {}  # relpath -> ((mtime ns, size), sha256)

    def _listing(self) -> dict[str, tuple[int, int]]:
        selector = pafs.FileSelector(self.root, allow_not_found=True, recursive=True)
        with self.storage._io(self.root):
            infos = self.storage.fs.get_file_info(selector)
        out = {}
        prefix = self.root.rstrip("/") + "/"
        for info in infos:
            if info.type != pafs.FileType.File or not info.path.startswith(prefix):
                continue
            rel = info.path[len(prefix):]
            if watched(rel):
                out[rel] = (info.mtime_ns or 0, info.size or 0)
        return out

    def _sha256(self, rel: str) -> str:
        path = f"{self.root}/{rel}"
        h = hashlib.sha256()
        with self.storage._io(path), self.storage.fs.open_input_stream(path) as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()

    def current(self) -> dict[str, str]:
        """{relative path: sha256} of the watched files as they are now."""
        listing = self._listing()
        out = {}
        for rel, stamp in sorted(listing.items()):
            seen = self._seen.get(rel)
            if seen is None or seen[0] != stamp:
                try:
                    seen = (stamp, self._sha256(rel))
                except FileNotFoundError:  # deleted between listing and reading
                    continue
                self._seen[rel] = seen
            out[rel] = seen[1]
        return out


def write_ledger(run_dir: Path, storage: Storage, name: str, files: dict[str, str]) -> None:
    atomic_write_text(Path(run_dir) / LEDGER_FILE, json.dumps(
        {"version": LEDGER_VERSION, "experiment": storage.child(name).uri, "files": files}, indent=2, sort_keys=True))


def record_ledger(run_dir: Path, storage: Storage, name: str) -> dict[str, str]:
    """Digest the experiment's watched files now and keep them in the run directory."""
    files = _Digests(storage, name).current()
    write_ledger(run_dir, storage, name, files)
    return files


def read_ledger(run_dir: Path) -> dict[str, str]:
    path = Path(run_dir) / LEDGER_FILE
    if not path.is_file():
        raise RaynasError(f"{run_dir} has no record of the Tune state its race wrote ({LEDGER_FILE}), so the state "
                          "in storage cannot be checked before it is loaded",
                          "start the search again (runs of raynas before 0.1.0 did not record it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())):
            raise ValueError("'files' is not a mapping of names to digests")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise RaynasError(f"{path} is damaged ({exc})", "start the search again") from None
    return files


def verify_ledger(run_dir: Path, storage: Storage, name: str) -> None:
    """Refuse the resume unless every watched file of the experiment is exactly as recorded."""
    recorded = read_ledger(run_dir)
    now = _Digests(storage, name).current()
    changed = sorted(k for k in recorded.keys() & now.keys() if recorded[k] != now[k])
    unknown = sorted(now.keys() - recorded.keys())
    missing = sorted(recorded.keys() - now.keys())
    if not (changed or unknown or missing):
        return
    parts = [f"{what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
             for what, names in (("changed", changed), ("not written by this race", unknown), ("missing", missing))
             if names]
    raise RaynasError(
        f"the race's Tune state in {storage.child(name).uri} cannot be restored: it differs from what this home "
        f"recorded when the race wrote it ({'; '.join(parts)}); nothing was loaded from it, since restoring "
        "unpickles these files",
        "if the storage was tampered with, or the race's driver was killed while saving its state, start the "
        "search again (the zoo and datasets are not affected)")


class LedgerCallback(Callback):
    """A Tune driver callback that keeps the run directory's digests in step with the storage.

    It checks (by modification time and size, so unchanged files are not read again) at most
    every ``period_s`` seconds and at the end of the experiment. Holds plain strings only, since
    Tune pickles its callbacks into ``tuner.pkl``.
    """

    def __init__(self, run_dir: str | Path, storage_uri: str, name: str, period_s: float = 2.0):
        self.run_dir, self.storage_uri, self.name, self.period_s = str(run_dir), storage_uri, name, period_s
        self._digests: _Digests | None = None
        self._last_check = 0.0
        self._last_files: dict[str, str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "storage_uri": self.storage_uri, "name": self.name, "period_s": self.period_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def record(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_check < self.period_s:
            return
        self._last_check = now
        if self._digests is None:
            self._digests = _Digests(Storage(self.storage_uri), self.name)
        files = self._digests.current()
        if files != self._last_files:
            write_ledger(Path(self.run_dir), self._digests.storage, self.name, files)
            self._last_files = files

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.record()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.record(force=True)
