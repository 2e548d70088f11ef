"""Serving gives numpy's BLAS one thread, so bank searches do not spin against ONNX Runtime's pool (edgetl.runtime.threads)."""

from __future__ import annotations

import os

from threadpoolctl import threadpool_info, threadpool_limits

from edgetl.runtime.threads import limit_blas


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_a_running_server_has_one_blas_thread(server):
    assert _blas_threads() and set(_blas_threads()) == {1}


def test_limit_blas_sets_the_pool_size():
    with threadpool_limits(limits=None):  # restored afterwards, whatever the test sets
        limit_blas(2)
        # Every BLAS in the process is capped (torch, once imported by a test, brings its own).
        assert max(_blas_threads()) <= 2 and min(2, os.cpu_count() or 1) in _blas_threads()
        limit_blas(0)  # never zero threads
        assert set(_blas_threads()) == {1}
