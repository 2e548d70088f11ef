"""What a batch buys the backbone on this CPU: ONNX Runtime's time per image at batch 1, 2, 4 and 8.

    python benchmarks/batch_size.py [--model PATH] [--threads 1] [--cpu 0] [--seconds 3] [--rounds 3] [--callers 4]

The built-in EfficientNet-Lite0 export (the store's, made by `edgetl serve`
or `edgetl export` on first use) run alone, one intra-op thread pinned to one
CPU by default, as the peer benchmark gives every server; the batch sizes are
taken in turn in each round, so the VM's drift falls on all of them alike.
One more row, --callers threads each running batch 1 on the session at the
same time: what a server that runs every request's model call in its own
thread (and the peer benchmark's raw limit, C threads on the servers' CPUs)
pays when they share the CPU, against one caller whose runs follow each other.
The answer differs by CPU and decides whether micro-batching on the CPU pays
(edgetl.runtime.batcher: CPU_MAX_BATCH, and whether one worker thread, which
never lets images queue, is the right default; BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 2, 4, 8)


def _default_model() -> Path:
    found = sorted((ROOT / "edgetl-data" / "store" / "exports").glob("efficientnet_lite0-*/model.onnx"))
    if not found:
        sys.exit("no EfficientNet-Lite0 export in edgetl-data/store; run `edgetl serve` once, or pass --model")
    return found[-1]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ms_per_image(session: ort.InferenceSession, name: str, x: np.ndarray, seconds: float, callers: int = 1) -> float:
    """Run `x` on the session from `callers` threads at once for `seconds` (each at least once): wall milliseconds per image."""
    done = [0] * callers
    stop = time.perf_counter() + seconds

    def call(i: int) -> None:
        while True:
            session.run(["logits"], {name: x})
            done[i] += len(x)
            if time.perf_counter() >= stop:
                return

    started = time.perf_counter()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (time.perf_counter() - started) / sum(done) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: do not pin)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callers", type=int, default=4, help="threads running batch 1 at once, one more row (0: no such row)")
    args = parser.parse_args()
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(args.model or _default_model()), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    _, _, h, w = session.get_inputs()[0].shape
    rng = np.random.default_rng(0)
    rows = [(b, 1) for b in BATCHES] + ([(1, args.callers)] if args.callers > 1 else [])
    per_image: dict[tuple[int, int], list[float]] = {row: [] for row in rows}
    for _ in range(args.rounds):
        for b, callers in rows:
            x = rng.random((b, 3, h, w), np.float32)
            session.run(["logits"], {name: x})  # warm this shape
            per_image[(b, callers)].append(_ms_per_image(session, name, x, args.seconds, callers))
    one = statistics.median(per_image[(1, 1)])
    print(f"{_cpu_name()}, onnxruntime {ort.__version__}, {args.threads} intra-op thread(s), "
          f"{'CPU ' + str(args.cpu) if args.cpu >= 0 else 'not pinned'}; {args.rounds} rounds of {args.seconds:g} s per row")
    print()
    print("| batch | callers at once | ms per image, median [min–max] | images/s | per image against batch 1, one caller |")
    print("|---|---|---|---|---|")
    for (b, callers), values in per_image.items():
        m = statistics.median(values)
        print(f"| {b} | {callers} | {m:.2f} [{min(values):.2f}–{max(values):.2f}] | {1000 / m:.0f} | {m / one:.3f} |")


if __name__ == "__main__":
    main()
