"""What the benchmarks that start Ray share: a scratch folder, and Ray started the same way.

Imported by the benchmark scripts as ``from _scratch import ...`` (they run as scripts, with
this folder on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def scratch_space(prefix: str) -> Iterator[Path]:
    """A temporary folder for a benchmark's data; on the way out Ray (if this run started or
    joined one) is shut down first, so no worker still writes there, then the folder goes."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield scratch
    finally:
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def start_ray() -> float:
    """Start (or join) Ray as raynas does, without Ray Data's progress bars; returns the seconds taken."""
    import ray.data

    from raynas.ray_session import ensure_ray

    t0 = time.perf_counter()
    ensure_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False  # keep the output readable
    return time.perf_counter() - t0
