"""SIGTERM stops a command the way Ctrl+C does, and says how to resume it.

`ray job stop`, Kubernetes and batch schedulers end a command with SIGTERM, and Ray's job
supervisor follows with SIGKILL after RAY_JOB_STOP_WAIT_TIME_S (3 s by default). ``ray.init``
installs a SIGTERM handler that calls ``sys.exit`` wherever the main thread is, which inside Ray
Tune's loop ends the run with a stack dump. Here SIGTERM becomes SIGINT instead: Tune stops its
trials and saves its experiment state (a second one forces it), and elsewhere Python raises
KeyboardInterrupt, which ``raynas.cli.main`` reports as "interrupted" (exit 130). The line on how
to resume is printed first, before anything else, so that it reaches the log even when the
SIGKILL comes before the state is saved.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

_hint: str | None = None  # what the SIGTERM line says on how to resume; see resume_hint


def stop_on_sigterm() -> None:
    """Make SIGTERM act as Ctrl+C (SIGINT) for this process, after one line on stderr. Call it
    again after ``ray.init``, which replaces the handler; calling it twice does nothing more.
    Only the main thread can set signal handlers: from any other thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no SIGTERM here, or not the main interpreter
        pass


@contextlib.contextmanager
def resume_hint(text: str) -> Iterator[None]:
    """While inside, the SIGTERM line ends with ``text`` (how to resume what is running); the
    hint of an enclosing block comes back on leaving."""
    global _hint
    outer, _hint = _hint, text
    try:
        yield
    finally:
        _hint = outer


def _on_sigterm(signum: int, frame) -> None:
    hint = _hint
    _say(f"received SIGTERM (ray job stop?): stopping{f'; {hint}' if hint else ''}")
    # A Ray job's driver inherits SIGINT blocked from Ray's job supervisor: the SIGINT would wait
    # forever for the SIGKILL. The main thread, which runs this handler, takes it again.
    if hasattr(signal, "pthread_sigmask"):
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if not callable(signal.getsignal(signal.SIGINT)):
        # SIGINT ignored (a background job of a shell script) or at its default (die at once):
        # what Python's own SIGINT handler would do
        raise KeyboardInterrupt
    os.kill(os.getpid(), signal.SIGINT)


def finish_on_sigterm(exit_code: int) -> None:
    """For a command whose answer is decided (printed, stored, its exit code known): a SIGTERM
    during the teardown that follows, such as Ray's shutdown at exit (seconds), ends the process
    at once with ``exit_code``. Raised as Ctrl+C instead, it would interrupt an atexit callback,
    which Python reports with a stack. Only for a process's entry point: a test run or notebook
    that calls a command must keep its own SIGTERM. Main thread only, as every handler."""
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError, AttributeError):
        signal.signal(signal.SIGTERM, lambda signum, frame: _flush_and_exit(exit_code))


def exit_on_sigterm() -> None:
    """For a Ray worker that runs trials: SIGTERM (Ray ending a finished or stopped job's workers,
    a node going away) ends the process at once, without a word. Ray's worker handler raises
    ``SystemExit`` wherever the main thread is; inside a garbage-collection callback Python prints
    that as an ignored exception with its stack, which Ray forwards to the driver's log after the
    driver's own clean stop. What the trial saved is already in its last reported checkpoint.
    Only the main thread can set signal handlers: from any other thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError, AttributeError):
        signal.signal(signal.SIGTERM, _exit_now)


def _exit_now(signum: int, frame) -> None:
    _flush_and_exit(128 + signum)


def _flush_and_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):  # what the process printed before still reaches the log
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _say(line: str) -> None:
    """One line on stderr, at once. The main thread may have been writing to stderr when the
    signal came: a reentrant write fails, and then the line goes to file descriptor 2 directly."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (RuntimeError, OSError, ValueError, AttributeError):
        with contextlib.suppress(OSError):
            os.write(2, (line + "\n").encode("utf-8", "replace"))
