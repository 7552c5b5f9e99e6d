"""The thread policy: a bounded OpenMP spin, threads capped by what the process is given and
re-sized to what other processes leave idle."""

import os
import subprocess
import sys

import pytest
import torch

from raynas.threads import ThreadGovernor, busy_and_total_ticks, configure_threads


def _stat(path, per_cpu):
    """A /proc/stat with one line per CPU: (busy ticks, idle ticks)."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{i} {busy} 0 0 {idle} 0 0 0 0 0 0" for i, (busy, idle) in enumerate(per_cpu)]
    path.write_text("\n".join(lines + ["intr 1 2 3", "ctxt 5"]) + "\n")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_ticks_are_summed_over_the_given_cpus(tmp_path):
    stat = tmp_path / "stat"
    _stat(stat, [(30, 70), (10, 90), (100, 0)])
    assert busy_and_total_ticks(stat=stat) == (140, 300)
    assert busy_and_total_ticks({0, 1}, stat=stat) == (40, 200)
    assert busy_and_total_ticks(stat=tmp_path / "missing") is None


def test_the_governor_gives_way_to_a_busy_process_and_takes_it_back(tmp_path, restore_threads, monkeypatch):
    import raynas.threads as threads_module

    clock = iter(range(0, 1000, 10))  # 10 s between measurements, in which this process used no CPU
    monkeypatch.setattr(threads_module.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(threads_module.time, "process_time", lambda: 0.0)
    stat = tmp_path / "stat"
    _stat(stat, [(50, 50), (50, 50)])
    governor = ThreadGovernor(2, period_s=1.0, stat=stat)
    governor.cpus = {0, 1}
    governor._last = governor._sample()
    _stat(stat, [(150, 50), (50, 150)])  # another process kept one of the two CPUs busy
    assert governor.tick() == 1 and torch.get_num_threads() == 1
    _stat(stat, [(150, 150), (50, 250)])  # and then stopped
    assert governor.tick() == 2 and torch.get_num_threads() == 2


def test_threads_given_by_the_user_or_a_single_cpu_are_kept(tmp_path, restore_threads):
    stat = tmp_path / "stat"
    _stat(stat, [(0, 0), (0, 0)])
    for governor in (ThreadGovernor(2, adaptive=False, period_s=0.0, stat=stat),
                     ThreadGovernor(1, period_s=0.0, stat=stat)):
        _stat(stat, [(100, 0), (100, 0)])
        assert governor.tick() == governor.limit and not governor.adaptive
    assert not configure_threads(1).adaptive and torch.get_num_threads() == 1


def test_raynas_sets_a_bounded_spin_before_torch_loads_and_keeps_the_users_choice():
    code = "import raynas, os; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    run = lambda extra: subprocess.run([sys.executable, "-c", code], env={**env, **extra}, check=True,  # noqa: E731
                                       capture_output=True, text=True).stdout.split()
    assert run({}) == ["300000", "None"]
    assert run({"GOMP_SPINCOUNT": "5"}) == ["5", "None"]
    assert run({"OMP_WAIT_POLICY": "PASSIVE"}) == ["None", "PASSIVE"]  # the user's policy, unbounded by ours
