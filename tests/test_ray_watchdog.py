"""A local Ray started by raynas goes away with its driver, even one killed with SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from raynas.ray_watchdog import alive, end_session, session_processes

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"


def _process(session: str, code: str = "import time; time.sleep(120)") -> subprocess.Popen:
    """A stand-in for a Ray process: the session name on its command line, as Ray's have."""
    return subprocess.Popen([sys.executable, "-c", code, f"--session-name={session}"])


def _gone(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_ending_a_session_ends_its_processes_only():
    session, other = f"session_test_{uuid.uuid4().hex[:8]}", f"session_test_{uuid.uuid4().hex[:8]}"
    mine, stubborn, theirs = _process(session), _process(session, IGNORES_TERM), _process(other)
    try:
        time.sleep(0.5)  # let the stubborn one install its handler
        assert set(session_processes(session)) == {mine.pid, stubborn.pid}
        end_session(session, grace_s=1.0)
        assert _gone(mine, 5) and _gone(stubborn, 5)  # SIGKILL after the ignored SIGTERM
        assert theirs.poll() is None  # another session is left alone
    finally:
        for p in (mine, stubborn, theirs):
            p.kill()
            p.wait()


def test_only_ray_processes_holding_session_files_are_matched_not_a_tail_of_its_logs(tmp_path):
    session_dir = tmp_path / f"session_test_{uuid.uuid4().hex[:8]}"
    (session_dir / "logs").mkdir(parents=True)
    log = session_dir / "logs" / "raylet.out"
    log.write_text("x")
    holds = f"import sys, time; f = open({str(log)!r}); print('ready', flush=True); time.sleep(120)"
    tail = subprocess.Popen([sys.executable, "-c", holds, str(log)], stdout=subprocess.PIPE, text=True)
    agent = subprocess.Popen(["bash", "-c", f'exec -a ray::FakeAgent {sys.executable} -c "$0"', holds],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert tail.stdout.readline().strip() == "ready" and agent.stdout.readline().strip() == "ready"
        assert session_processes(str(session_dir)) == [agent.pid]
    finally:
        for p in (tail, agent):
            p.kill()
            p.wait()


def test_the_watchdog_ends_the_session_when_its_driver_is_killed():
    session = f"session_test_{uuid.uuid4().hex[:8]}"
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from raynas.ray_watchdog import start_watchdog
        start_watchdog({session!r})
        time.sleep(120)
    """)])
    ray_like = _process(session, IGNORES_TERM)
    try:
        time.sleep(2.0)  # the watchdog is up
        assert ray_like.poll() is None
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        assert _gone(ray_like, 15)
    finally:
        for p in (driver, ray_like):
            p.kill()
            p.wait()


@pytest.mark.slow
def test_a_local_ray_goes_away_with_a_driver_killed_by_sigkill(tmp_path):
    script = textwrap.dedent("""
        import os, sys, time
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        import ray
        from raynas.ray_session import ensure_ray
        ensure_ray(num_cpus=1)
        ray.get(ray.remote(lambda: 1).remote())  # a worker, as a trial has
        print(ray._private.worker.global_worker.node.get_session_dir_path(), flush=True)
        time.sleep(300)
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    session = driver.stdout.readline().strip()
    try:
        assert os.path.basename(session).startswith("session_") and session_processes(session)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 30
        while session_processes(session) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert session_processes(session) == []
    finally:
        driver.kill()
        for pid in session_processes(session):
            os.kill(pid, signal.SIGKILL)


def test_alive_tells_a_dead_process():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not alive(proc.pid)
    assert alive(os.getpid())
