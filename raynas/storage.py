"""Crash-safe storage: everything is written under a temporary name and moved into place.

A reader therefore sees either the old file or the complete new one, never half a file,
and a failed write leaves what was stored untouched.

Two layers:

* :func:`atomic_path` and friends for local files (datasets, run directories);
  :func:`exclusive_entry` for what may be a file or a whole directory (a dataset of shards);
* :class:`Storage`, a root directory on a local path or any ``pyarrow.fs`` URI (``s3://``,
  ``gs://``, ``hdfs://``, NFS mounts), for what several machines share: the zoo and the
  embedding store. Single files are written to a temporary key and moved (a rename locally,
  an atomic put on object stores).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

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


try:  # advisory locks tell a write in progress from a killed writer's leftover (POSIX only)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

STALE_TEMP_AGE_S = 60.0  # an unlocked temporary file this old has no live writer
UNLOCKED_STALE_AGE_S = 900.0  # without advisory locks, age alone has to tell
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}


@contextlib.contextmanager
def exclusive_path(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Like :func:`atomic_path`, but without ``overwrite`` the final name is taken in one step.

    The finished temporary file is hard-linked to ``final``, which fails when ``final``
    exists, so of two writers racing for one name exactly one wins; the other gets
    ``FileExistsError`` and the winner's file is untouched (checking first and renaming
    after would let both "win" and silently lose one). The temporary file stays locked
    while it is written, so :func:`remove_stale_temps` never deletes a write in progress.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp
        if overwrite:
            os.replace(tmp, final)
        else:
            _link_new(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.close(fd)


def _link_new(tmp: Path, final: Path) -> None:
    """Give ``tmp`` the name ``final`` only if no such file exists (FileExistsError otherwise)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # no hard links on this file system (FAT, some network mounts): claim the name with an
        # empty file, which is just as exclusive, then move the finished file over it
        os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        os.replace(tmp, final)


STAGE_LOCK = ".lock"  # in a staging directory: locked while its writer lives


@contextlib.contextmanager
def staging_dir(near: str | os.PathLike) -> Iterator[Path]:
    """A new hidden directory next to ``near``, deleted with whatever it holds at the end. Its
    :data:`STAGE_LOCK` file stays locked meanwhile, so :func:`remove_stale_temps` leaves it alone
    (a file opened for writing: NFS, which emulates these locks, refuses them on a directory)."""
    near = Path(near)
    near.parent.mkdir(parents=True, exist_ok=True)
    stage = near.with_name(f".{near.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")
    stage.mkdir()
    fd = None
    try:
        fd = os.open(stage / STAGE_LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def exclusive_entry(final: str | os.PathLike, overwrite: bool = False,
                    dir_final: str | os.PathLike | None = None) -> Iterator[Path]:
    """Like :func:`exclusive_path`, for what may be a file or a directory (a dataset of shards).

    Yields a path that does not exist yet, in a :func:`staging_dir` next to ``final``. What the
    caller made there is then moved into place: a file to ``final``, a directory to ``dir_final``
    (default ``final``). ``final`` and ``dir_final`` are two names of one thing: without
    ``overwrite`` an existing one of either is ``FileExistsError`` and nothing changes; with
    ``overwrite`` both are replaced, only once the new entry is complete (see :func:`_place`).
    """
    final = Path(final)
    dir_final = Path(dir_final) if dir_final is not None else final
    with staging_dir(final) as stage:
        entry = stage / final.name
        yield entry
        if not os.path.lexists(entry):
            raise FileNotFoundError(errno.ENOENT, "nothing was written", str(entry))
        is_dir = _is_real_dir(entry)
        _place(entry, dir_final if is_dir else final, final if is_dir else dir_final, overwrite)


def replace_entry(new: str | os.PathLike, old: str | os.PathLike) -> None:
    """Move ``new`` (a file or a directory) over ``old`` (either, or missing), for names no other
    writer uses: a file over a file in one rename, else ``old`` is renamed aside first."""
    aside = _swap(Path(new), Path(old))
    if aside is not None:
        _delete(aside)


def _swap(new: Path, old: Path) -> Path | None:
    """:func:`replace_entry` but for deleting the old entry: returns where it was put aside."""
    if not (_is_real_dir(new) or _is_real_dir(old)):
        os.replace(new, old)
        return None
    if os.path.lexists(old) and _exchange(new, old):
        return new  # now holding the old entry
    aside = _aside(old) if os.path.lexists(old) else None
    try:
        os.rename(new, old)
    except OSError:
        if aside is not None:
            os.rename(aside, old)  # put the old one back
        raise
    return aside


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing entries in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``), so a
    folder replaced by another is never missing, not even for a moment or after a crash; False
    where the system or the file system cannot (then the caller renames the old one aside first)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` itself (no lock file): the writers that take it
    check names and move entries into the folder one at a time. Where a folder cannot be locked
    (Windows; NFS) the hard link or rename that takes a name is all the exclusion there is."""
    try:
        fd = os.open(folder, os.O_RDONLY) if fcntl is not None else None
    except OSError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                if exc.errno not in (errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _aside(path: Path) -> Path:
    """Rename ``path`` to a hidden temporary name in its folder (where readers no longer see it
    and :func:`remove_stale_temps` finds it should this process die before deleting it)."""
    aside = path.with_name(f".{path.name}.old{TMP_MARK}{uuid.uuid4().hex[:8]}")
    os.rename(path, aside)
    return aside


def _delete(path: Path) -> None:
    if _is_real_dir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _place(entry: Path, final: Path, rival: Path, overwrite: bool) -> None:
    """Move ``entry`` (a file or a directory) to ``final``; ``rival`` is the other name of the
    same thing. Under the folder's lock, so two writers never both take a name.

    Without ``overwrite`` an existing ``final`` or ``rival`` is ``FileExistsError``; a file
    still takes its name by a hard link (which fails when the name exists, even for a writer
    that does not lock), a directory by a rename onto the missing name. With ``overwrite``: a
    file replaces a file in one rename; otherwise the old ``final`` is renamed aside, the new
    entry renamed in and the old one deleted (a reader that looks in between finds no dataset
    for a moment, never half of one). An old ``rival`` goes after the new entry is in place.
    """
    old: list[Path] = []
    with _folder_lock(final.parent):
        taken = [p for p in dict.fromkeys((final, rival)) if os.path.lexists(p)]
        if taken and not overwrite:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(taken[0]))
        if not overwrite:
            if _is_real_dir(entry):
                os.rename(entry, final)
            else:
                _link_new(entry, final)
        else:
            old += [p for p in [_swap(entry, final)] if p is not None]
        if rival != final and os.path.lexists(rival):
            old.append(_aside(rival))  # aside under the lock: a later writer may take the name
    for path in old:
        _delete(path)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files and directories that killed writers left in ``folder``; returns
    what was deleted.

    An entry counts as stale when no writer holds its lock (a directory's: its
    :data:`STAGE_LOCK` file) and it is older than :data:`STALE_TEMP_AGE_S` (the age covers the
    instant between creating and locking it; a directory without a lock file, such as an old
    dataset moved aside to be deleted, has its age alone). Best effort: an entry that cannot be
    inspected or deleted is left alone.
    """
    removed = []
    try:
        entries = [p for p in Path(folder).iterdir() if p.name.startswith(".") and TMP_MARK in p.name]
    except OSError:
        return removed
    for path in entries:
        is_dir = _is_real_dir(path)
        lock = path / STAGE_LOCK if is_dir and (path / STAGE_LOCK).is_file() else None
        try:
            fd = os.open(lock or path, (os.O_RDWR if lock else os.O_RDONLY) | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if fcntl is not None and (lock or not is_dir):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a writer holds it
            limit = STALE_TEMP_AGE_S if fcntl is not None else UNLOCKED_STALE_AGE_S
            if time.time() - os.fstat(fd).st_mtime > limit:
                if is_dir:
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


TMP_MARK = ".tmp-"


def check_key(part: str) -> str:
    """A relative '/'-separated key below a storage root; '..', '.', absolute keys and empty
    segments are refused, so names read from stored files cannot point outside the root."""
    if (not isinstance(part, str) or part.startswith("/") or "\\" in part
            or any(s in ("", ".", "..") for s in part.split("/"))):
        raise RaynasError(f"storage key {part!r} is not allowed: keys are relative paths below the storage "
                          "root without '.', '..' or empty parts",
                          "this name came from a damaged or hand-edited file; remove the entry that holds it")
    return part


def _list_local(path: str, dirs: bool) -> list[str]:
    """Names in a local directory, by ``os.scandir``: pyarrow's local listing can come back empty
    while an entry of the directory is being deleted (seen with pyarrow 26), which made zoo readers
    racing with pruning see no version at all. Symlinks are never followed."""
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries
                    if (e.is_dir(follow_symlinks=False) if dirs else e.is_file(follow_symlinks=False))]
    except (FileNotFoundError, NotADirectoryError):
        return []


TIMEOUT_ENV = "RAYNAS_STORAGE_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 20.0
PSEUDO_FILESYSTEMS = ("/proc", "/sys")  # kernel state, never a place to store files


def storage_timeout() -> float:
    """Seconds the first contact with a remote storage may take: ``$RAYNAS_STORAGE_TIMEOUT_S``,
    else :data:`DEFAULT_TIMEOUT_S`."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise RaynasError(f"${TIMEOUT_ENV} is {text!r}, not a number of seconds above 0",
                          f"unset it, or set it to seconds such as {DEFAULT_TIMEOUT_S:g}")
    return seconds


def within_time_limit(call: Callable[[], Any], uri: str, what: str) -> Any:
    """``call()``, given at most :func:`storage_timeout` seconds. It runs in a daemon thread, so a
    storage that never answers (gs:// retrying a missing bucket, an unreachable credentials server)
    fails with a clear error instead of hanging the command; the stuck thread is left behind and
    does not keep the process alive."""
    seconds = storage_timeout()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="raynas-storage-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise RaynasError(f"storage '{uri}' did not answer within {seconds:g} s ({what})",
                          "check the bucket name, its credentials and the network, or pass another --storage "
                          f"(${TIMEOUT_ENV} sets the time limit)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Storage:
    """A root directory on a local path or a ``pyarrow.fs`` URI; paths below it are '/'-joined.

    Names that start with '.' or contain :data:`TMP_MARK` are never listed, so readers do
    not see writes in progress.
    """

    def __init__(self, root: str | os.PathLike):
        root = str(root)
        if "://" in root:
            try:
                self.fs, path = within_time_limit(lambda: pafs.FileSystem.from_uri(root), root, "opening it")
            except (pa.ArrowException, ValueError, OSError) as exc:
                raise RaynasError(f"cannot open storage '{root}': {exc}",
                                  "give a local path or a URI pyarrow understands (file://, s3://, gs://, hdfs://)"
                                  ) from exc
        else:
            self.fs, path = pafs.LocalFileSystem(), str(Path(root).expanduser().resolve())
        self.uri, self.root = root, path.rstrip("/")
        self._reached = [False]  # shared with children: a storage is probed once

    def __repr__(self) -> str:
        return f"Storage({self.uri!r})"

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        """The full path of a key below the root; keys never leave it (no '..', not absolute)."""
        return "/".join([self.root, *(check_key(p) for p in parts if p)])

    def child(self, *parts: str) -> "Storage":
        """The storage rooted at a sub-directory; a URI keeps its query (endpoint, region...)."""
        sub = Storage.__new__(Storage)
        sub.fs, sub.root, sub._reached = self.fs, self.path(*parts), self._reached
        base, sep, query = self.uri.partition("?")
        sub.uri = "/".join([base.rstrip("/"), *parts]) + sep + query
        return sub

    # -- reading ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _io(self, path: str) -> Iterator[None]:
        """Storage failures (network, credentials) as a RaynasError that names the storage;
        FileNotFoundError passes through, since callers treat a missing file themselves."""
        try:
            self._reach()
            yield
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise RaynasError(f"cannot access {path} on storage '{self.uri}': {exc}",
                              "check the storage path or URI, its credentials and the network") from exc

    def _reach(self) -> None:
        """Contact a remote storage once, within :func:`storage_timeout`, before its first use: a
        missing bucket or a dead network then fails in seconds instead of hanging that use."""
        if self.is_local or self._reached[0]:
            return
        within_time_limit(lambda: self.fs.get_file_info(self.root), self.uri, "looking up its root")
        self._reached[0] = True

    def check_root(self) -> None:
        """Refuse, before any work starts, a root that cannot hold what is stored: a remote one
        that fails or does not answer in time, a local one that is a file, lies in /proc or /sys,
        or is in a folder that cannot be written (a new root is created by the first write)."""
        if not self.is_local:
            with self._io(self.root):
                return
        root = Path(self.root)
        fix = "pass --storage a folder you can write to (it is created if missing) or a URI such as s3://bucket/raynas"
        pseudo = next((p for p in PSEUDO_FILESYSTEMS if root == Path(p) or Path(p) in root.parents), None)
        if pseudo:
            raise RaynasError(f"storage '{self.uri}' lies in {pseudo}, which holds kernel state, not files", fix)
        try:
            existing = next(p for p in (root, *root.parents) if p.exists())
            if not existing.is_dir():
                where = "is a file" if existing == root else f"cannot be created: {existing} is a file"
                raise RaynasError(f"storage '{self.uri}' {where}, not a folder", fix)
        except OSError as exc:
            raise RaynasError(f"cannot inspect storage '{self.uri}': {exc}", fix) from None
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RaynasError(f"storage '{self.uri}' is not writable ({existing} is read-only)", fix)

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
        path = self.path(*parts)
        with self._io(path):
            if self.is_local:
                names = _list_local(path, dirs)
            else:
                want = pafs.FileType.Directory if dirs else pafs.FileType.File
                infos = self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
                names = [i.base_name for i in infos if i.type == want]
        return sorted(n for n in names if not n.startswith(".") and TMP_MARK not in n)

    def stat(self, *parts: str) -> tuple[float, int] | None:
        """(modification time, size) of a file, or None when it does not exist."""
        path = self.path(*parts)
        with self._io(path):
            info = self.fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            return None
        return (info.mtime.timestamp() if info.mtime else 0.0, info.size or 0)

    def download(self, local: str | os.PathLike, *parts: str) -> None:
        """Copy a file to the new local file ``local``, streamed (memory does not grow with it);
        FileNotFoundError when it does not exist."""
        path = self.path(*parts)
        with self._io(path):
            pafs.copy_files(path, str(local), source_filesystem=self.fs,
                            destination_filesystem=pafs.LocalFileSystem(), use_threads=False)

    # -- writing ----------------------------------------------------------------------
    def _put(self, write: Callable[[str], None], *parts: str) -> str:
        """``write(temporary path)``, then the temporary file moved over the final one."""
        final = self.path(*parts)
        parent, name = final.rsplit("/", 1)
        tmp = f"{parent}/.{name}{TMP_MARK}{uuid.uuid4().hex[:8]}"
        with self._io(final):
            self.fs.create_dir(parent, recursive=True)
            try:
                write(tmp)
                self.fs.move(tmp, final)
            finally:
                if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                    self.fs.delete_file(tmp)
        return final

    def write_bytes(self, data: bytes, *parts: str) -> str:
        """Write atomically: to a temporary name, then moved over the final one."""
        def write(tmp: str) -> None:
            with self.fs.open_output_stream(tmp) as fh:
                fh.write(data)

        return self._put(write, *parts)

    def upload(self, local: str | os.PathLike, *parts: str) -> str:
        """Copy the local file ``local`` here, streamed, atomically as :meth:`write_bytes`."""
        return self._put(lambda tmp: pafs.copy_files(str(local), tmp, source_filesystem=pafs.LocalFileSystem(),
                                                     destination_filesystem=self.fs, use_threads=False), *parts)

    def check_writable(self) -> None:
        """Write and delete a small hidden file, so an unwritable storage is found before hours
        of training whose result would go there."""
        probe = f".probe{TMP_MARK}{uuid.uuid4().hex[:8]}"
        try:
            self.check_root()
            self.write_bytes(b"", probe)
            self.delete(probe)
        except RaynasError as exc:
            raise RaynasError(f"storage '{self.uri}' is not writable: {exc.problem}",
                              "fix its permissions (or credentials), or pass another --storage") from None

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
