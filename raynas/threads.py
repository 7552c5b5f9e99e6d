"""How many threads torch, BLAS and loaders may use, and how OpenMP threads wait.

On a shared machine (Tune packs trials onto nodes, other users run jobs) a process that
starts one thread per core oversubscribes it: OpenMP threads that spin at every barrier burn
the core a descheduled partner needs (2 threads beside one busy process: 3-4x slower).
Sleeping at once instead (passive waiting) pays a wake-up at each of the thousands of small
parallel regions of a search step (1.4-2.1x slower on an idle machine). So the policy is:

* threads spin before sleeping, up to libgomp's bound (``GOMP_SPINCOUNT``, set in
  ``raynas/__init__.py`` before torch loads): the speed of spinning on an idle machine;
* at most the CPUs the process is given: Ray's assignment to the task or trial, the CPU
  affinity mask and the cgroup CPU quota (:func:`available_cpus`);
* within that, only the CPUs other processes leave idle, measured while training runs
  (:class:`ThreadGovernor`): two threads alone, one beside a busy process, so no thread spins
  waiting for a partner the scheduler put aside.

Measured with ``benchmarks/contention.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path


def ray_cpus() -> float | None:
    """CPUs Ray assigned to the current task, actor or trial; None outside a Ray worker."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return None
    if not ray.is_initialized():
        return None
    ctx = ray.get_runtime_context()
    if ctx.worker.mode != ray.WORKER_MODE:  # the driver: Ray assigned it nothing
        return None
    return float(ctx.get_assigned_resources().get("CPU", 0.0))


def cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The cgroup's CPU quota in CPUs (v2 ``cpu.max`` or v1 ``cfs_quota_us``); None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def available_cpus() -> int:
    """Whole CPUs this process may use: the least of Ray's assignment, affinity and quota (>= 1)."""
    limits = [x for x in (affinity_cpus(), cgroup_cpus(), ray_cpus()) if x]  # 0: a num_cpus=0 actor
    return max(1, math.floor(min(limits))) if limits else 1

def configure_threads(threads: int | None = None) -> "ThreadGovernor":
    """Size torch's intra-op threads (and BLAS pools) to ``threads`` or :func:`available_cpus`.

    Returns the governor a training loop ticks every step: with ``threads`` given it keeps that
    number; otherwise it follows the load of other processes. Safe to call more than once;
    inter-op threads are left alone (torch allows setting them only before the first parallel work).
    """
    limit = threads or available_cpus()
    set_threads(limit)
    return ThreadGovernor(limit, adaptive=threads is None)


def set_threads(n: int) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
        threadpool_limits(limits=n, user_api="blas")


def busy_and_total_ticks(cpus: set[int] | None = None, stat: Path = Path("/proc/stat")) -> tuple[int, int] | None:
    """Busy and total time of the CPUs ``cpus`` (default: all) since boot, in clock ticks; None
    where the kernel does not tell (not Linux)."""
    busy = total = 0
    try:
        for line in stat.read_text().splitlines():
            name, *values = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            if cpus is not None and int(name[3:]) not in cpus:
                continue
            fields = [int(x) for x in values[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(fields)
            busy += sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total else None


class ThreadGovernor:
    """Keeps torch's threads at the CPUs other processes leave idle, up to ``limit``.

    Every ``period_s`` seconds (checked by :meth:`tick`, which a training loop calls each step)
    it compares the machine's busy CPU time with this process's own: what others used, in CPUs,
    is taken from ``limit``. Threads of a process beside a busy one wait for a partner that the
    scheduler has put aside; one thread fewer then is faster than one thread more.
    """

    def __init__(self, limit: int, adaptive: bool = True, period_s: float = 1.0,
                 stat: Path = Path("/proc/stat")):
        self.limit, self.period_s, self.stat = limit, period_s, stat
        self.adaptive = adaptive and limit > 1
        self.threads = limit
        try:
            self.cpus: set[int] | None = set(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            self.cpus = None
        self._last = self._sample() if self.adaptive else None

    def _sample(self) -> tuple[float, float, int, int] | None:
        ticks = busy_and_total_ticks(self.cpus, self.stat)
        if ticks is None:
            return None
        return time.monotonic(), time.process_time(), *ticks

    def tick(self) -> int:
        """Re-size the threads if ``period_s`` has passed since the last measurement; returns the count."""
        if not self.adaptive or self._last is None or time.monotonic() - self._last[0] < self.period_s:
            return self.threads
        now = self._sample()
        if now is None:
            return self.threads
        wall, own, busy, total = (b - a for a, b in zip(self._last, now))
        self._last = now
        if total <= 0 or wall <= 0:
            return self.threads
        cpus = len(self.cpus) if self.cpus else (os.cpu_count() or 1)
        others = max(0.0, busy / total * cpus - own / wall)  # CPUs other processes kept busy
        threads = max(1, min(self.limit, math.floor(cpus - others + 0.5)))
        if threads != self.threads:
            set_threads(threads)
            self.threads = threads
        return self.threads
