"""What a batch buys the backbone on this CPU: ONNX Runtime's time per image at batch 1, 2, 4 and 8.

    python benchmarks/batch_size.py [--model PATH] [--threads 1] [--cpu 0] [--seconds 3] [--rounds 3]

The built-in EfficientNet-Lite0 export (the store's, made by `edgetl serve`
or `edgetl export` on first use) run alone, one intra-op thread pinned to one
CPU by default, as the peer benchmark gives every server; the batch sizes are
taken in turn in each round, so the VM's drift falls on all of them alike.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: do not pin)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
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
    per_image: dict[int, list[float]] = {b: [] for b in BATCHES}
    for _ in range(args.rounds):
        for b in BATCHES:
            x = rng.random((b, 3, h, w), np.float32)
            session.run(["logits"], {name: x})  # warm this shape
            images, started = 0, time.perf_counter()
            while time.perf_counter() - started < args.seconds:
                session.run(["logits"], {name: x})
                images += b
            per_image[b].append((time.perf_counter() - started) / images * 1000)
    one = statistics.median(per_image[1])
    print(f"{_cpu_name()}, onnxruntime {ort.__version__}, {args.threads} intra-op thread(s), "
          f"{'CPU ' + str(args.cpu) if args.cpu >= 0 else 'not pinned'}; {args.rounds} rounds of {args.seconds:g} s per batch size")
    print()
    print("| batch | ms per image, median [min–max] | images/s | per image against batch 1 |")
    print("|---|---|---|---|")
    for b, values in per_image.items():
        m = statistics.median(values)
        print(f"| {b} | {m:.2f} [{min(values):.2f}–{max(values):.2f}] | {1000 / m:.0f} | {m / one:.3f} |")


if __name__ == "__main__":
    main()
