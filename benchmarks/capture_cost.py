"""What capturing images for review costs a classify call, with capture on and off in one run.

    python benchmarks/capture_cost.py [--seconds 3] [--rounds 16] [--concurrency 1 4] [--data-dir DIR]

One real `edgetl serve` process on loopback (terminal on, as by default)
with a task trained on synthetic defects (a head on EfficientNet-Lite0).
Clients send 224 px JPEGs of parts the adapter has not seen, one in five of
another material, so some answers are uncertain and get captured (up to the
default caps). On the same warm server, pairs of rounds compare capture off
(`enabled = false`) with capture on under the default policy, the order
alternating from pair to pair; a VM's throughput drifts by more than the
effect, so the figure is the median of the per-pair ratios, with its
interquartile range, and the serving process's CPU time per image (from
/proc), which the drift disturbs far less. A few rounds of capturing
*everything* (every image sampled, no caps: the writer thread at full load, a
worst case no line runs; on a second task trained the same way, so its
captures do not fill the first task's rate caps) show what the writer costs
when it is kept busy. Then, in-process, the cost of `Capturer.offer` itself
(the only part on the serving path), per call.
"""

from __future__ import annotations

import argparse
import json
import os
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
#: The task each mode classifies for: the worst case gets its own, so its thousands of captures do
#: not use up the rate caps (sliding windows per task) that the default mode is measured under.
TASKS = {"off": "line", "default": "line", "everything": "line-all"}


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
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=16, help="pairs of rounds (off, default)")
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
    results = {"machine": machine(), "seconds": args.seconds, "pairs": args.rounds, "rows": []}
    try:
        channel = grpc.insecure_channel(address)
        models = model_pb2_grpc.ModelServiceStub(channel)
        labels = adapt_pb2_grpc.LabelServiceStub(channel)
        training = adapt_pb2_grpc.TrainingServiceStub(channel)
        png = lambda img: cv2.imencode(".png", img)[1].tobytes()  # noqa: E731
        labelled = [(kind, png(img)) for kind, img in make_images("brick", classes, 20, 224, 0)]
        for task in dict.fromkeys(TASKS.values()):
            models.CreateTask(model_pb2.CreateTaskRequest(name=task, class_names=list(classes)), timeout=300)
            for kind, data in labelled:
                labels.AddLabel(adapt_pb2.AddLabelRequest(task=task, image=image_pb2.Image(encoded=data), class_name=kind), timeout=30)
            job = training.StartTraining(adapt_pb2.StartTrainingRequest(task=task, method="head"), timeout=30)
            final = list(training.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=600))[-1].job
            assert final.activated, final.gate

        # The line: parts like the labelled ones, and one in five of another material the adapter
        # never saw (so some answers are unsure, as on a real line, and the caps come into play).
        parts = [img for _, img in make_images("brick", classes, 56, 224, 11)]
        other = [img for _, img in make_images("gravel", classes, 14, 224, 12)]
        mixed = [other[i // 5] if i % 5 == 4 and i // 5 < len(other) else parts[i - i // 5] for i in range(len(parts) + len(other))]
        frames = [cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for img in mixed]
        requests = {
            task: [inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=f)) for f in frames] for task in set(TASKS.values())
        }
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        review = review_pb2_grpc.ReviewServiceStub(channel)
        scores = [stub.Classify(r, timeout=30) for r in requests["line"]]
        uncertain = sum(r.score < 0.6 or (r.top_classes[0].score - r.top_classes[1].score) < 0.15 for r in scores)
        results["traffic"] = f"{len(frames)} JPEGs 224x224 (~{int(np.mean([len(f) for f in frames]))} bytes), {uncertain} of them uncertain by the default policy"
        counter = iter(range(10**12))
        current = {"requests": requests["line"]}

        def call():
            batch = current["requests"]
            stub.Classify(batch[next(counter) % len(batch)], timeout=30)

        def kept(task: str) -> int:
            summary = review.GetReviewSummary(review_pb2.GetReviewSummaryRequest(task=task), timeout=10).tasks[0]
            return summary.pending + summary.resolved + summary.skipped

        def cpu_s() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

        def measure(mode: str, c: int) -> dict:
            task = TASKS[mode]
            review.SetCapturePolicy(policy_request(task, mode), timeout=10)
            current["requests"] = requests[task]
            before, cpu = kept(task), cpu_s()
            result = load_for(args.seconds, c, call)
            time.sleep(0.3)  # let the writer finish this round's images before counting them and their CPU
            return {**result, "kept": kept(task) - before, "cpu_s": cpu_s() - cpu}

        for c in args.concurrency:
            load_for(1.0, c, call)  # warm
            runs = {m: [] for m in MODES}
            ratios = []
            for i in range(args.rounds):
                order = ("off", "default") if i % 2 == 0 else ("default", "off")
                pair = {mode: measure(mode, c) for mode in order}
                for mode, run in pair.items():
                    runs[mode].append(run)
                ratios.append(pair["default"]["per_s"] / pair["off"]["per_s"])
                if i % 4 == 3:
                    runs["everything"].append(measure("everything", c))
            row = {"concurrency": c, "paired_ratio": statistics.median(ratios), "paired_ratio_iqr": list(np.percentile(ratios, [25, 75]))}
            for mode in MODES:
                r = runs[mode]
                rates = [x["per_s"] for x in r]
                images = sum(x["n"] for x in r)
                row[mode] = {
                    "median_per_s": statistics.median(rates), "min_per_s": min(rates), "max_per_s": max(rates),
                    "p50_ms": statistics.median(x["p50_ms"] for x in r), "p99_ms": statistics.median(x["p99_ms"] for x in r),
                    "images": images, "kept": sum(x["kept"] for x in r), "rounds": len(r),
                    "cpu_ms_per_image": 1000 * sum(x["cpu_s"] for x in r) / images,
                }
            for mode in ("default", "everything"):
                row[mode]["cpu_ratio_to_off"] = row[mode]["cpu_ms_per_image"] / row["off"]["cpu_ms_per_image"]
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    results["offer_us"] = offer_cost()
    print(f"\nMachine: {results['machine']}\nTraffic: {results['traffic']}; {args.rounds} pairs of {args.seconds:g} s rounds (off, default), order alternating\n")
    print("| concurrency | capture | img/s median (min–max over rounds) | p50 / p99 ms | server CPU ms per image | images kept / classified |")
    print("|---|---|---|---|---|---|")
    for row in results["rows"]:
        for mode in MODES:
            m = row[mode]
            cpu = f"{m['cpu_ms_per_image']:.3f}" + (f" ({m['cpu_ratio_to_off']:.3f}× off)" if "cpu_ratio_to_off" in m else "")
            print(
                f"| {row['concurrency']} | {mode} | {m['median_per_s']:.1f} ({m['min_per_s']:.1f}–{m['max_per_s']:.1f}) | "
                f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f} | {cpu} | {m['kept']} / {m['images']} |"
            )
    print()
    for row in results["rows"]:
        low, high = row["paired_ratio_iqr"]
        print(f"concurrency {row['concurrency']}: default / off throughput, median of {args.rounds} paired ratios: {row['paired_ratio']:.3f} (interquartile {low:.3f}–{high:.3f})")
    print(f"\n`Capturer.offer` per call (in-process): {results['offer_us']['not kept']:.2f} µs when the policy keeps nothing, "
          f"{results['offer_us']['kept']:.2f} µs when it queues the image")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
