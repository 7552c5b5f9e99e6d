"""How many threads torch, BLAS and loaders may use: the CPUs this process really has.

On a shared machine (Tune packs trials onto nodes, other users run jobs) a process that
starts one thread per core of the machine oversubscribes it: OpenMP threads spin waiting for
each other at every barrier. A fused search step that took 1.1 s alone took 4.3 s beside one
busy process with 2 threads on 2 cores, but 1.5 s alone and 1.5 s beside it with 1 thread.
So the thread count is the smallest of what the process is given: the CPUs Ray assigned to
this task or trial, the CPU affinity mask and the cgroup CPU quota.
"""

from __future__ import annotations

import math
import os
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

def configure_threads(threads: int | None = None) -> int:
    """Size torch's intra-op threads (and BLAS pools) to ``threads`` or :func:`available_cpus`.

    Returns the number chosen. Safe to call more than once; inter-op threads are left alone
    (torch allows setting them only before the first parallel work).
    """
    import torch
    from threadpoolctl import threadpool_limits

    n = threads or available_cpus()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")
    return n
