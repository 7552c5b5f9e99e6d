"""A local Ray goes away with the raynas process that started it, even after ``kill -9``.

``ray.shutdown()`` stops a local Ray when its driver exits normally. A driver killed with
SIGKILL runs no cleanup: its raylet and GCS notice and exit, but Ray's dashboard and runtime-env
agents can stay behind (they ignore the first SIGTERM). So when raynas starts a local Ray it
also starts this watchdog, in its own session: it waits for the driver to die, then ends every
process of that Ray session (the session as a flag on their command line, or, for processes
named ``ray::...``, one of its files open: the agents rename themselves), first with SIGTERM,
then SIGKILL. It is started only for a Ray this process started itself, never for a cluster it
joined, and never touches other sessions.

    python -m raynas.ray_watchdog DRIVER_PID SESSION_DIR
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 3.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a zombie (dead, not yet reaped) counts as dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def session_processes(session_dir: str, proc: Path = Path("/proc")) -> list[int]:
    """PIDs of the Ray session in ``session_dir``: those started with its name or folder as a flag
    (raylet, GCS, workers), and Ray processes (``ray::...``, the agents rename themselves) with a
    file of the session open. A ``tail -f`` of its logs is neither."""
    me, found = os.getpid(), []
    name = Path(session_dir).name
    flags = {f"--session-name={name}", f"--session_name={name}", f"--session-dir={session_dir}",
             f"--session_dir={session_dir}"}
    inside = os.path.realpath(session_dir).rstrip("/") + "/"
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if flags.intersection(args) or (args[0].startswith("ray::") and _has_open_file_in(entry, inside)):
            found.append(int(entry.name))
    return found


def _has_open_file_in(entry: Path, folder: str) -> bool:
    try:
        for fd in (entry / "fd").iterdir():
            try:
                if os.readlink(fd).startswith(folder):
                    return True
            except OSError:
                continue
    except OSError:  # gone, or not ours to look at
        return False
    return False


def end_session(session_dir: str, grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM every process of the session, then SIGKILL what is left after ``grace_s``."""
    pids = session_processes(session_dir)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    for pid in session_processes(session_dir):
        _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def watch(driver_pid: int, session_dir: str) -> None:
    while alive(driver_pid):
        time.sleep(POLL_S)
    end_session(session_dir)


def start_watchdog(session_dir: str) -> subprocess.Popen:
    """Watch this process; end the Ray session of ``session_dir`` once it has died."""
    return subprocess.Popen([sys.executable, "-m", "raynas.ray_watchdog", str(os.getpid()), session_dir],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2])
