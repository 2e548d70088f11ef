"""What capturing images for review costs a classify call, with capture on and off in one run.

    python benchmarks/capture_cost.py [--seconds 5] [--rounds 6] [--concurrency 1 4] [--data-dir DIR]

One real `edgetl serve` process on loopback (terminal on, as by default)
with a task trained on synthetic defects (a head on EfficientNet-Lite0).
Clients send 224 px JPEGs of parts the adapter has not seen, so some answers
are uncertain and get captured. Rounds alternate on the same warm server:
capture off (`enabled = false`), capture on with the default policy, and
capture of *everything* (every image sampled, no caps: the writer thread at
full load, a worst case no line runs). Reports per mode the median
throughput and its spread over rounds, the ratio to capture off, and how
many images were kept. Then, in-process, the cost of `Capturer.offer` itself
(the only part on the serving path), per call.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve_overhead import load_for, machine, start_server  # noqa: E402

MODES = ("off", "default", "everything")


def policy_request(task: str, mode: str):
    from edgetl.api.v1 import review_pb2

    if mode == "off":
        return review_pb2.SetCapturePolicyRequest(task=task, reset=True, enabled=False)
    if mode == "default":
        return review_pb2.SetCapturePolicyRequest(task=task, reset=True)
    return review_pb2.SetCapturePolicyRequest(task=task, reset=True, random_rate=1.0, per_minute=10**6, per_hour=10**7, per_day=10**8, disk_bytes=1 << 40)


def offer_cost(repeats: int = 200_000) -> dict:
    """µs per `Capturer.offer` call, when the policy keeps nothing and when it keeps everything."""
    from edgetl.review.capture import Capturer
    from edgetl.review.policy import CapturePolicies, CapturePolicy
    from edgetl.review.store import ReviewStore
    from edgetl.runtime.engine import Prediction
    from edgetl.runtime.preprocess import EncodedImage

    tmp = Path(tempfile.mkdtemp(prefix="edgetl-offer-"))
    try:
        out = {}
        for name, policy in (("not kept", CapturePolicy()), ("kept", CapturePolicy(random_rate=1.0, per_minute=0))):
            store = ReviewStore(tmp, tmp / "edgetl.db", lambda sha, fmt: tmp / "x")
            policies = CapturePolicies(tmp / "edgetl.db", policy)
            capturer = Capturer(store, policies, skip=(), max_pixels=10**8, queue_size=repeats + 1)
            scores = np.array([0.97, 0.02, 0.01], np.float32)
            prediction = Prediction("t", "ok", 0.97, scores, [("ok", 0.97), ("pit", 0.02), ("burn", 0.01)], "1", 0, 0, 0, 0)
            image = EncodedImage(b"\x89PNG not decoded on this path")
            started = time.perf_counter()
            for _ in range(repeats):
                capturer.offer(prediction, image)
            out[name] = (time.perf_counter() - started) / repeats * 1e6
            capturer.close(60)  # per_minute = 0: the writer drops them all, nothing is written
            store.close()
            policies.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=6, help="rounds per mode, interleaved")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "edgetl-data", help="its store/ (the backbone export) is reused")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import grpc

    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc, review_pb2, review_pb2_grpc
    from edgetl.synthetic import make_images

    work = Path(tempfile.mkdtemp(prefix="edgetl-capture-bench-"))
    (args.data_dir / "store").mkdir(parents=True, exist_ok=True)
    (work / "store").symlink_to((args.data_dir / "store").resolve(), target_is_directory=True)
    classes = ("ok", "pit", "burn")
    proc, address, _ = start_server(work, ["--providers", "cpu", "--terminal-port", "0"])
    results = {"machine": machine(), "seconds": args.seconds, "rounds": args.rounds, "rows": []}
    try:
        channel = grpc.insecure_channel(address)
        models = model_pb2_grpc.ModelServiceStub(channel)
        models.CreateTask(model_pb2.CreateTaskRequest(name="line", class_names=list(classes)), timeout=300)
        labels = adapt_pb2_grpc.LabelServiceStub(channel)
        png = lambda img: cv2.imencode(".png", img)[1].tobytes()  # noqa: E731
        for kind, img in make_images("brick", classes, 20, 224, 0):
            labels.AddLabel(adapt_pb2.AddLabelRequest(task="line", image=image_pb2.Image(encoded=png(img)), class_name=kind), timeout=30)
        training = adapt_pb2_grpc.TrainingServiceStub(channel)
        job = training.StartTraining(adapt_pb2.StartTrainingRequest(task="line", method="head"), timeout=30)
        final = list(training.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=600))[-1].job
        assert final.activated, final.gate

        frames = [cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for _, img in make_images("brick", classes, 70, 224, 11)]
        requests = [inference_pb2.ClassifyRequest(task="line", image=image_pb2.Image(encoded=f)) for f in frames]
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        review = review_pb2_grpc.ReviewServiceStub(channel)
        scores = [stub.Classify(r, timeout=30) for r in requests]
        uncertain = sum(r.score < 0.6 or (r.top_classes[0].score - r.top_classes[1].score) < 0.15 for r in scores)
        results["traffic"] = f"{len(frames)} JPEGs 224x224 (~{int(np.mean([len(f) for f in frames]))} bytes), {uncertain} of them uncertain by the default policy"
        counter = iter(range(10**12))

        def call():
            stub.Classify(requests[next(counter) % len(requests)], timeout=30)

        def kept() -> int:
            summary = review.GetReviewSummary(review_pb2.GetReviewSummaryRequest(task="line"), timeout=10).tasks[0]
            return summary.pending + summary.resolved + summary.skipped

        for c in args.concurrency:
            per_mode = {m: [] for m in MODES}
            captured = {m: 0 for m in MODES}
            load_for(1.0, c, call)  # warm
            for _ in range(args.rounds):
                for mode in MODES:
                    review.SetCapturePolicy(policy_request("line", mode), timeout=10)
                    before = kept()
                    per_mode[mode].append(load_for(args.seconds, c, call))
                    time.sleep(0.5)  # let the writer finish this round's images before counting
                    captured[mode] += kept() - before
            row = {"concurrency": c}
            for mode in MODES:
                rates = [r["per_s"] for r in per_mode[mode]]
                row[mode] = {
                    "median_per_s": statistics.median(rates), "min_per_s": min(rates), "max_per_s": max(rates),
                    "p50_ms": statistics.median(r["p50_ms"] for r in per_mode[mode]), "p99_ms": statistics.median(r["p99_ms"] for r in per_mode[mode]),
                    "images": sum(r["n"] for r in per_mode[mode]), "captured": captured[mode],
                }
            for mode in ("default", "everything"):
                row[mode]["ratio_to_off"] = row[mode]["median_per_s"] / row["off"]["median_per_s"]
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    results["offer_us"] = offer_cost()
    print(f"\nMachine: {results['machine']}\nTraffic: {results['traffic']}; {args.rounds} rounds of {args.seconds:g} s per mode, interleaved\n")
    print("| concurrency | capture | img/s median (min–max over rounds) | ratio to off | p50 / p99 ms | images kept / classified |")
    print("|---|---|---|---|---|---|")
    for row in results["rows"]:
        for mode in MODES:
            m = row[mode]
            ratio = f"{m['ratio_to_off']:.3f}" if "ratio_to_off" in m else "1"
            print(
                f"| {row['concurrency']} | {mode} | {m['median_per_s']:.1f} ({m['min_per_s']:.1f}–{m['max_per_s']:.1f}) | {ratio} | "
                f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f} | {m['captured']} / {m['images']} |"
            )
    print(f"\n`Capturer.offer` per call (in-process): {results['offer_us']['not kept']:.2f} µs when the policy keeps nothing, "
          f"{results['offer_us']['kept']:.2f} µs when it queues the image")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
