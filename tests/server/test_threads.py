"""Serving gives numpy's BLAS one thread, so bank searches do not spin against ONNX Runtime's pool (edgetl.runtime.threads)."""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

from edgetl.runtime.threads import limit_blas


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_a_running_server_has_one_blas_thread(server):
    assert _blas_threads() and set(_blas_threads()) == {1}


def test_limit_blas_sets_the_pool_size():
    with threadpool_limits(limits=None):  # restored afterwards, whatever the test sets
        limit_blas(2)
        # A cap, not a size: every BLAS in the process (torch and scipy bring their own) stays at or under it.
        # (A library may not grow past the threads it started with, so 2 is not asserted.)
        assert _blas_threads() and max(_blas_threads()) <= 2
        limit_blas(0)  # never zero threads
        assert set(_blas_threads()) == {1}
