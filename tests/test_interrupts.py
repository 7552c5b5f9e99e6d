"""SIGTERM (`ray job stop`, Kubernetes, batch schedulers) stops a command as Ctrl+C does, after
one line on how to resume. Each test runs a small Python process of its own; no Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import raynas
from raynas import interrupts

ROOT = str(Path(raynas.__file__).resolve().parent.parent)
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

PROGRAM = """
import contextlib, signal, sys, time
from raynas.interrupts import resume_hint, stop_on_sigterm

{setup}
stop_on_sigterm()
stop_on_sigterm()  # twice: still one handler, one line
try:
    with {context}:
        print("ready", flush=True)
        time.sleep(60)
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def sigterm_when_ready(program: str, ready: tuple[str, ...] = ("ready",), signals: int = 1) -> tuple[int, str, str]:
    """Run ``program`` in a Python process of its own; once it has printed the lines ``ready``,
    send it SIGTERM ``signals`` times. Its exit code, the rest of its stdout, and its stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(program)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in ready:
            assert proc.stdout.readline().strip() == line, proc.stderr.read()
        for _ in range(signals):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def run_until_sigterm(context: str = "resume_hint('resume with X')", setup: str = "",
                      signals: int = 1) -> tuple[int, str, str]:
    return sigterm_when_ready(textwrap.dedent(PROGRAM).format(context=context, setup=setup), signals=signals)


def test_sigterm_interrupts_like_ctrl_c_and_says_how_to_resume():
    code, out, err = run_until_sigterm()
    assert code == 130 and out.strip() == "interrupted", (out, err)
    assert err.splitlines() == ["received SIGTERM (ray job stop?): stopping; resume with X"]


def test_without_a_hint_the_line_only_says_it_stops():
    code, out, err = run_until_sigterm(context="contextlib.nullcontext()")
    assert code == 130 and out.strip() == "interrupted", (out, err)
    assert err.splitlines() == ["received SIGTERM (ray job stop?): stopping"]


def test_ray_job_drivers_with_sigint_blocked_still_stop():
    """Ray's job supervisor starts the driver with SIGINT blocked (unless RAY_JOB_STOP_SIGNAL=SIGINT)."""
    code, out, err = run_until_sigterm(setup="signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})")
    assert code == 130 and out.strip() == "interrupted", (out, err)
    assert "resume with X" in err and "Traceback" not in err


def test_ignored_sigint_still_stops():
    """A background job of a shell script starts with SIGINT ignored."""
    code, out, err = run_until_sigterm(setup="signal.signal(signal.SIGINT, signal.SIG_IGN)")
    assert code == 130 and out.strip() == "interrupted", (out, err)
    assert "Traceback" not in err


def test_a_second_sigterm_is_a_second_ctrl_c():
    """What Ray Tune does on the first SIGINT: note it, and let the next one interrupt."""
    setup = textwrap.dedent("""
        def first(signum, frame):
            print("stopping gracefully", flush=True)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGINT, first)
    """)
    code, out, err = run_until_sigterm(setup=setup, signals=2)
    assert code == 130 and out.split() == ["stopping", "gracefully", "interrupted"], (out, err)
    assert "Traceback" not in err and err.count("received SIGTERM") == 2


def test_off_the_main_thread_it_does_nothing():
    import threading

    before = signal.getsignal(signal.SIGTERM)
    failures = []

    def call():
        try:
            interrupts.stop_on_sigterm()
        except BaseException as exc:  # noqa: BLE001 - what the test looks for
            failures.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert failures == [] and signal.getsignal(signal.SIGTERM) is before


def test_resume_hint_nests():
    assert interrupts._hint is None
    with interrupts.resume_hint("outer"):
        with interrupts.resume_hint("inner"):
            assert interrupts._hint == "inner"
        assert interrupts._hint == "outer"
    assert interrupts._hint is None


WORKER = """
import signal, sys, time, weakref
from raynas.interrupts import exit_on_sigterm

def raise_exit(signum, frame):  # what Ray's worker handler does
    raise SystemExit(1)

signal.signal(signal.SIGTERM, raise_exit)
{setup}
class Thing:
    pass

def collected(ref):  # the signal arrives while Python runs a garbage-collection callback
    print("saved", flush=True)
    print("ready", flush=True)
    time.sleep(60)

thing = Thing()
ref = weakref.ref(thing, collected)
del thing
print("went on after the signal", flush=True)
"""


@pytest.mark.parametrize("quiet", [False, True])
def test_a_trial_worker_ends_quietly_on_sigterm_even_inside_a_gc_callback(quiet):
    """Ray ends a finished job's workers with SIGTERM; its handler's SystemExit inside a weakref
    callback is printed as an ignored exception with its stack (and the worker goes on)."""
    program = textwrap.dedent(WORKER).format(setup="exit_on_sigterm()" if quiet else "")
    code, out, err = sigterm_when_ready(program, ready=("saved", "ready"))
    if quiet:
        assert code == 128 + signal.SIGTERM and err == "" and out == "", (out, err)
    else:  # the failure this guards against, shown to happen
        assert "Traceback" in err and "went on after the signal" in out


def test_exit_on_sigterm_off_the_main_thread_does_nothing():
    import threading

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=interrupts.exit_on_sigterm)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before


TEARDOWN = """
import atexit, sys, time
from raynas.interrupts import finish_on_sigterm, stop_on_sigterm

def shutdown():  # Ray's shutdown at exit, slow enough for a late SIGTERM to land in it
    print("ready", flush=True)
    time.sleep(60)

atexit.register(shutdown)
stop_on_sigterm()
print("the answer", flush=True)
{setup}
sys.exit(3)
"""


@pytest.mark.parametrize("finish", [False, True])
def test_a_sigterm_after_the_answer_ends_the_process_with_its_exit_code(finish):
    program = textwrap.dedent(TEARDOWN).format(setup="finish_on_sigterm(3)" if finish else "")
    code, out, err = sigterm_when_ready(program, ready=("the answer", "ready"))
    if finish:
        assert code == 3 and err == "" and out == "", (code, out, err)
    else:  # the failure this guards against, shown to happen: Ctrl+C inside an atexit callback
        assert "Exception ignored in atexit callback" in err and "KeyboardInterrupt" in err, err


def test_the_program_and_the_job_scripts_exit_through_run(monkeypatch):
    """``run`` is every process entry point's way out: the console script and each job script."""
    import tomllib

    import raynas.cli

    calls = []
    monkeypatch.setattr(raynas.cli, "main", lambda argv=None: calls.append(("main", argv)) or 7)
    monkeypatch.setattr(raynas.cli, "finish_on_sigterm", lambda code: calls.append(("finish", code)))
    with pytest.raises(SystemExit) as exited:
        raynas.cli.run(["data", "list"])
    assert exited.value.code == 7 and calls == [("main", ["data", "list"]), ("finish", 7)]
    scripts = tomllib.loads((Path(ROOT) / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"raynas": "raynas.cli:run"}
    for script in (Path(ROOT) / "jobs").glob("*.py"):
        text = script.read_text()
        assert "from raynas.cli import run" in text and "main(" not in text, script.name


def test_finish_on_sigterm_off_the_main_thread_does_nothing():
    import threading

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=interrupts.finish_on_sigterm, args=(0,))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before
