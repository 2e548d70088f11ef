"""What the Prometheus instrumentation costs per request, in microseconds.

    python benchmarks/metrics_cost.py [--n 100000]

Times exactly what the serving path records for one answered Classify call:
one image counter and four histogram observations (engine), one call counter
(interceptor). The baseline is an empty call in the same loop.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgetl import metrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    n = parser.parse_args().n
    per_image = metrics.PredictionMetrics.of("imagenet", "builtin")

    def record():
        per_image.observe(1.0, 0.1, 3.0, 5.0)
        metrics.rpc_done("/edgetl.v1.InferenceService/Classify", "OK")

    empty = timeit.timeit(lambda: None, number=n) / n
    recorded = timeit.timeit(record, number=n) / n
    print(f"metrics per request: {(recorded - empty) * 1e6:.2f} us (loop overhead {empty * 1e6:.2f} us subtracted)")


if __name__ == "__main__":
    main()
