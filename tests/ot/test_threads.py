"""OT numerics run with one BLAS thread and restore the caller's setting."""

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from raynas.ot.threads import single_threaded_blas


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_single_threaded_blas_limits_and_restores():
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure numpy's BLAS is loaded

    @single_threaded_blas
    def inside():
        return _blas_threads()

    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        assert set(inside()) == {1}
        assert _blas_threads() == before == [2] * len(before)
    assert inside.__name__ == "inside"
