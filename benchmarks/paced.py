"""A camera's pace, not a flood: Classify latency with ONNX Runtime's threads spinning or not.

    python benchmarks/paced.py [--rounds 3] [--requests 150] [--out benchmarks/results/paced.json]

Why: `ort_spinning` (on by default) paid for throughput when clients send
back to back, but a line camera sends a frame every few tens of
milliseconds, and between frames spinning threads go to sleep or keep a
core busy for nothing. This measures both settings on the same work, in a
real `edgetl serve` on loopback (CPU), the built-in `imagenet` task and a
224 px JPEG:

- **paced**: one client sending a frame every 50 ms (20 fps) and every
  10 ms (100 fps), waiting for each answer; latency at the client and the
  server's own `total_ms`;
- **closed loop**: 1 and 4 clients sending back to back (requests/s), as
  `serve_overhead.py` and the peer benchmark do.

Each round starts a server with spinning on, measures everything, stops
it, then the same with spinning off; rounds interleave so drift in the
machine falls on both. Reports medians over rounds and the spread (min to
max of the rounds' medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve_overhead import load_for, machine, start_server

PACES_MS = (50, 10)
SETTINGS = {"spinning": "true", "not spinning": "false"}


def paced(call, interval_s: float, requests: int) -> dict:
    """One client, one frame every `interval_s` (or at once when the last answer came late)."""
    client_ms, server_ms = [], []
    next_at = time.perf_counter()
    for _ in range(requests):
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        response = call()
        client_ms.append((time.perf_counter() - t0) * 1000)
        server_ms.append(response.timing.total_ms)
        next_at = max(next_at + interval_s, time.perf_counter())
    return {"client_p50_ms": float(np.median(client_ms)), "client_p90_ms": float(np.percentile(client_ms, 90)), "server_p50_ms": float(np.median(server_ms))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=150, help="frames per paced cell")
    parser.add_argument("--seconds", type=float, default=5, help="per closed-loop cell")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "edgetl-data")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import grpc
    from skimage import data as skdata

    from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc

    jpeg = cv2.imencode(".jpg", cv2.resize(skdata.chelsea()[:, :, ::-1], (224, 224), interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    request = inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=jpeg), top_k=1)
    cells: dict[tuple[str, str], list[float]] = {}

    def record(setting: str, cell: str, value: float) -> None:
        cells.setdefault((setting, cell), []).append(value)

    with tempfile.TemporaryDirectory() as tmp:
        for setting, value in SETTINGS.items():
            # No terminal: it is not what is measured, and its port may be taken on a shared machine.
            (Path(tmp) / f"{value}.toml").write_text(f"[runtime]\nort_spinning = {value}\n\n[terminal]\nterminal = false\n")
        for round_ in range(args.rounds):
            for setting, value in SETTINGS.items():
                proc, address, _ = start_server(args.data_dir, ["--providers", "cpu", "--config", str(Path(tmp) / f"{value}.toml")])
                try:
                    channel = grpc.insecure_channel(address)
                    stub = inference_pb2_grpc.InferenceServiceStub(channel)
                    call = lambda: stub.Classify(request, timeout=10)  # noqa: E731
                    for _ in range(30):
                        call()
                    for pace in PACES_MS:
                        r = paced(call, pace / 1000, args.requests)
                        record(setting, f"{pace} ms apart, client p50", r["client_p50_ms"])
                        record(setting, f"{pace} ms apart, client p90", r["client_p90_ms"])
                        record(setting, f"{pace} ms apart, server total p50", r["server_p50_ms"])
                    for concurrency in (1, 4):
                        record(setting, f"closed loop c={concurrency}, req/s", load_for(args.seconds, concurrency, call)["per_s"])
                    channel.close()
                finally:
                    proc.terminate()
                    proc.wait(30)
                print(f"round {round_ + 1}: {setting} done", flush=True)

    names = list(dict.fromkeys(cell for _, cell in cells))
    print(f"\nmachine: {machine()}; {args.rounds} rounds; medians over rounds (min–max of the rounds)\n")
    print("| | " + " | ".join(SETTINGS) + " | not spinning / spinning |")
    print("|---|" + "---|" * (len(SETTINGS) + 1))
    summary = {}
    for cell in names:
        row = {s: cells[(s, cell)] for s in SETTINGS}
        med = {s: statistics.median(v) for s, v in row.items()}
        summary[cell] = {s: {"median": med[s], "rounds": row[s]} for s in SETTINGS}
        print(f"| {cell} | " + " | ".join(f"{med[s]:.1f} ({min(row[s]):.1f}–{max(row[s]):.1f})" for s in SETTINGS) + f" | {med['not spinning'] / med['spinning']:.2f}× |")
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "command": " ".join(sys.argv), "rounds": args.rounds, "cells": summary}, indent=2))


if __name__ == "__main__":
    main()
