"""How many threads numpy's BLAS may use beside ONNX Runtime's.

Anomaly banks and guided heads search their bank with one large matrix
product (numpy, so OpenBLAS) right after each backbone run (ONNX Runtime).
Both keep their worker threads spinning for a while after a call, so on a
small CPU the two pools fight over the same cores: on 2 cores a backbone run
(6.5 ms) followed by a 4,096-patch search (5.4 ms with 2 BLAS threads) took
22 ms together, and 15 ms with BLAS on one thread (the search alone then
takes 8.7 ms). Serving therefore gives BLAS one thread; a training process
gives it its `train_threads`, since it bounds every pool it starts.
"""

from __future__ import annotations


def limit_blas(threads: int) -> None:
    """Cap numpy's BLAS thread pool for the rest of this process (threadpoolctl; no-op where numpy has no BLAS pool)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(1, int(threads)), user_api="blas")
