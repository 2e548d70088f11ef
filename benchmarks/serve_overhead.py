"""What the server costs over raw ONNX Runtime, measured in one run.

    python benchmarks/serve_overhead.py [--seconds 10] [--concurrency 1 4 8] [--data-dir DIR]

Baseline: raw ONNX Runtime on the same export and session options, fed
already-preprocessed tensors at batch 1, from C threads at once (C = the
concurrency). Server: a real `edgetl serve` process on loopback, C client
threads each sending encoded JPEGs to Classify and waiting for the answer;
then the same through the KServe v2 API (ModelInfer, one BYTES image per
request, raw contents, both outputs).
Reports throughput ratio (server / raw) and latency p50/p99, the added
latency (server minus raw), cold start to `ready` with a cached export, and
the serving process's resident memory. Prints a Markdown table for
BENCHMARKS.md and writes JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


def load_for(seconds: float, concurrency: int, call) -> dict:
    """Run `call()` from `concurrency` threads for `seconds`; latencies in seconds."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop = time.perf_counter() + seconds
    errors = []

    def worker(i):
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                call()
                latencies[i].append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} calls failed: {errors[0]}")
    flat = [x for per in latencies for x in per]
    return {"n": len(flat), "per_s": len(flat) / elapsed, "p50_ms": percentile(flat, 50), "p99_ms": percentile(flat, 99)}


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024  # noqa: E731
    return get("VmRSS"), get("VmHWM")


def start_server(data_dir: Path, extra=()):
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgetl", "serve", "--data-dir", str(data_dir), "--port", "0", "--metrics-port", "0", "--log-level", os.environ.get("EDGETL_BENCH_LOG_LEVEL", "WARNING"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    line = proc.stdout.readline()
    if "ready" not in line:
        raise RuntimeError(f"server did not start: {line} {proc.stderr.read()[-2000:]}")
    return proc, re.search(r"ready on (\S+)", line).group(1), time.perf_counter() - t0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    import onnxruntime

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "edgetl-data")
    parser.add_argument("--image", choices=["224", "640x480"], default="224", help="JPEG size clients send")
    parser.add_argument("--config", type=Path, help="settings file for the server (e.g. to try [runtime] options)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import grpc
    import onnxruntime as ort
    from skimage import data as skdata

    from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.runtime.preprocess import EncodedImage, decode
    from edgetl.runtime.session import BackboneSession
    from edgetl.runtime.store import ModelStore
    from edgetl.settings import Settings

    settings = Settings.load(data_dir=args.data_dir, providers=("cpu",))
    store = ModelStore(args.data_dir / "store")
    record = store.ensure(BackboneRegistry.from_settings(settings).get(settings.default_backbone), settings.to_dict())

    size = (224, 224) if args.image == "224" else (640, 480)
    jpeg = cv2.imencode(".jpg", cv2.resize(skdata.chelsea()[:, :, ::-1], size, interpolation=cv2.INTER_AREA), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()

    # Raw ONNX Runtime: the same ONNX file with ORT's default options, fed
    # tensors preprocessed beforehand (what a hand-written loop would do).
    raw = ort.InferenceSession(str(record.onnx_path), providers=["CPUExecutionProvider"])
    tensor = BackboneSession(record, settings, store.trt_cache).preprocess(decode(EncodedImage(jpeg), 10**9))[None]
    for _ in range(20):
        raw.run(["logits"], {"image": tensor})

    def raw_call():
        raw.run(["logits"], {"image": tensor})

    results = {"machine": machine(), "image": f"{size[0]}x{size[1]} JPEG, {len(jpeg)} bytes", "seconds": args.seconds, "rows": []}

    server_args = ["--providers", "cpu", *(["--config", str(args.config)] if args.config else [])]
    results["server_args"] = server_args
    cold = []
    for _ in range(3):
        proc, address, seconds = start_server(args.data_dir, server_args)
        cold.append(seconds)
        proc.terminate()
        proc.wait(30)
    results["cold_start_s"] = statistics.median(cold)

    proc, address, _ = start_server(args.data_dir, server_args)
    try:
        channel = grpc.insecure_channel(address)
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        request = inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=jpeg), top_k=5)
        assert stub.Classify(request).label == "Egyptian cat"

        def server_call():
            stub.Classify(request, timeout=30)

        from edgetl.api.kserve import grpc_service_pb2 as kserve_pb2
        from edgetl.api.kserve import grpc_service_pb2_grpc as kserve_grpc
        from edgetl.server.kserve_tensors import encode_bytes_elements

        kserve = kserve_grpc.GRPCInferenceServiceStub(channel)
        infer = kserve_pb2.ModelInferRequest(model_name="imagenet", raw_input_contents=[encode_bytes_elements([jpeg])])
        infer.inputs.add(name="images", datatype="BYTES", shape=[1])
        assert kserve.ModelInfer(infer).raw_output_contents[0][4:] == b"Egyptian cat"

        def kserve_call():
            kserve.ModelInfer(infer, timeout=30)

        for _ in range(50):
            server_call()
            kserve_call()
        for c in args.concurrency:
            r = load_for(args.seconds, c, raw_call)
            s = load_for(args.seconds, c, server_call)
            k = load_for(args.seconds, c, kserve_call)
            row = {
                "concurrency": c,
                "raw": r,
                "server": s,
                "kserve": k,
                "throughput_ratio": s["per_s"] / r["per_s"],
                "kserve_ratio": k["per_s"] / r["per_s"],
                "kserve_added_p50_ms": k["p50_ms"] - r["p50_ms"],
                "added_p50_ms": s["p50_ms"] - r["p50_ms"],
                "added_p99_ms": s["p99_ms"] - r["p99_ms"],
            }
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
        results["server_rss_mb"], results["server_peak_rss_mb"] = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)

    print(f"\nMachine: {results['machine']}\nImage: {results['image']}; {args.seconds:g} s per measurement\n")
    print("| concurrency | raw ORT img/s | server img/s | ratio | raw p50 / p99 ms | server p50 / p99 ms | added p50 / p99 ms | KServe img/s | KServe ratio | KServe added p50 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in results["rows"]:
        r, s, k = row["raw"], row["server"], row["kserve"]
        print(
            f"| {row['concurrency']} | {r['per_s']:.1f} | {s['per_s']:.1f} | {row['throughput_ratio']:.2f} | "
            f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} | {s['p50_ms']:.2f} / {s['p99_ms']:.2f} | "
            f"{row['added_p50_ms']:.2f} / {row['added_p99_ms']:.2f} | {k['per_s']:.1f} | {row['kserve_ratio']:.2f} | {row['kserve_added_p50_ms']:.2f} |"
        )
    print(f"\nCold start to `ready` (cached export, median of 3): {results['cold_start_s']:.2f} s")
    print(f"Serving process resident memory after the run: {results['server_rss_mb']:.0f} MB (peak {results['server_peak_rss_mb']:.0f} MB)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
