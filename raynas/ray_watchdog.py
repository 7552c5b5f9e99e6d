"""A local Ray goes away with the raynas process that started it, even after ``kill -9``.

``ray.shutdown()`` stops a local Ray when its driver exits normally. A driver killed with
SIGKILL runs no cleanup: its raylet and GCS notice and exit, but Ray's dashboard and runtime-env
agents can stay behind (they ignore the first SIGTERM). So when raynas starts a local Ray it
also starts this watchdog, in its own session: it waits for the driver to die, then ends every
process of that Ray session (the session's name on their command line, or one of its files
open: the agents rename themselves), first with SIGTERM, then SIGKILL. It never touches a Ray
it did not see started, nor other sessions.

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
    """PIDs of the Ray session in ``session_dir``: its name on their command line (raylet, GCS,
    workers), or a file of the session open (the agents, which rename themselves ``ray::...``)."""
    me, found = os.getpid(), []
    name, inside = Path(session_dir).name, str(session_dir).rstrip("/") + "/"
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if "raynas.ray_watchdog" in cmdline:
            continue
        if name in cmdline or _has_open_file_in(entry, inside):
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
