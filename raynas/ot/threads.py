"""Single-threaded BLAS for the OT numerics, so they stay fast on a busy machine.

The linear algebra here is small (batches of 64x64 eigendecompositions, 500x64 products).
With a multi-threaded OpenBLAS on a machine whose other cores are busy (other Ray workers,
other users), BLAS threads wait for each other: on a 2-core machine with one core taken, a
batched eigendecomposition of 30 64x64 covariances took 2 s instead of 7 ms. One thread is
as fast on an idle machine and stays fast on a busy one.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

from threadpoolctl import ThreadpoolController

F = TypeVar("F", bound=Callable)
_controller: ThreadpoolController | None = None


def single_threaded_blas(fn: F) -> F:
    """Run ``fn`` with every loaded BLAS limited to one thread (restored afterwards)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        global _controller
        if _controller is None:  # created on first use, once numpy's BLAS is loaded; cheap to reuse
            _controller = ThreadpoolController()
        with _controller.limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]
