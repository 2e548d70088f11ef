"""Transfer learning on synthetic defects: head vs LoRA vs from scratch, and what training costs serving.

    python benchmarks/adapt.py [--textures brick grass gravel] [--labels 10 20 50] [--scratch-at 50]

For each texture and labels-per-class count: a fresh task with the six
classes of edgetl.synthetic (ok + five defects drawn on the texture photo),
labelled through the LabelService; a head job, a second head job (features
now cached), and a LoRA job (with --compare-scratch where the count is in
--scratch-at), all through a real `edgetl serve` process. Accuracy is
measured on a separate test set (20 per class, another seed) classified
through the live server, and on the validation split the jobs report.

Then: classify latency at concurrency 1 while idle and while a LoRA job
trains with the default settings (1 training thread, niced).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc  # noqa: E402
from edgetl.synthetic import CLASSES, make_images  # noqa: E402


def png(img) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def start_server(data_dir: Path, train_threads: int):
    (data_dir / "edgetl.toml").write_text(f"[training]\ntrain_threads = {train_threads}\n")
    proc = subprocess.Popen([sys.executable, "-m", "edgetl", "serve", "--data-dir", str(data_dir), "--port", "0", "--providers", "cpu", "--log-level", "WARNING"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    return proc, re.search(r"ready on (\S+)", line).group(1)


def train(channel, task, method, compare_scratch=False, **options):
    stub = adapt_pb2_grpc.TrainingServiceStub(channel)
    t0 = time.monotonic()
    job = stub.StartTraining(adapt_pb2.StartTrainingRequest(task=task, method=method, force=True, compare_scratch=compare_scratch, options=adapt_pb2.TrainingOptions(**options)))
    events = list(stub.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id)))
    wall = time.monotonic() - t0
    final = events[-1].job
    if final.state != "succeeded":
        raise RuntimeError(f"{task} {method}: {final.error}")
    train_events = [e for e in events if e.phase == "train"]
    scratch_events = [e for e in events if e.phase == "scratch"]
    fit_s = (train_events[-1].elapsed_s - train_events[0].elapsed_s) if len(train_events) > 1 else 0.0
    scratch_s = (scratch_events[-1].elapsed_s - scratch_events[0].elapsed_s) if scratch_events else None
    return final, wall, fit_s, scratch_s


def test_accuracy(channel, task, test_set) -> float:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    hits = [stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=data))).label == kind for kind, data in test_set]
    return float(np.mean(hits))


def latency_p(channel, image: bytes, seconds: float) -> dict:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    request = inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=image))
    lat, stop = [], time.monotonic() + seconds
    while time.monotonic() < stop:
        t = time.perf_counter()
        stub.Classify(request)
        lat.append((time.perf_counter() - t) * 1000)
    return {"n": len(lat), "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--textures", nargs="+", default=["brick", "grass", "gravel"])
    parser.add_argument("--labels", nargs="+", type=int, default=[10, 20, 50])
    parser.add_argument("--scratch-at", nargs="*", type=int, default=[50])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-threads", type=int, default=2, help="for the accuracy runs (nothing else is serving)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import grpc

    rows: list[dict] = []
    results = {"rows": rows, "args": {**vars(args), "out": str(args.out)}}
    data_dir = Path(tempfile.mkdtemp(prefix="edgetl-bench-"))
    shared_store = ROOT / "edgetl-data" / "store"
    if shared_store.is_dir():
        (data_dir / "store").symlink_to(shared_store)
    proc, address = start_server(data_dir, args.train_threads)
    try:
        channel = grpc.insecure_channel(address)
        models = model_pb2_grpc.ModelServiceStub(channel)
        labels = adapt_pb2_grpc.LabelServiceStub(channel)
        for texture in args.textures:
            test_set = [(k, png(img)) for k, img in make_images(texture, CLASSES, 20, args.size, seed=1000)]
            for n in args.labels:
                task = f"{texture}-{n}"
                models.CreateTask(model_pb2.CreateTaskRequest(name=task, class_names=list(CLASSES)))
                for kind, img in make_images(texture, CLASSES, n, args.size, seed=n):
                    labels.AddLabel(adapt_pb2.AddLabelRequest(task=task, image=image_pb2.Image(encoded=png(img)), class_name=kind))
                head, head_wall, _, _ = train(channel, task, "head")
                head_test = test_accuracy(channel, task, test_set)
                _, cached_wall, cached_fit, _ = train(channel, task, "head")
                scratch = n in args.scratch_at
                lora, lora_wall, _, scratch_s = train(channel, task, "lora", compare_scratch=scratch, epochs=args.epochs)
                lora_test = test_accuracy(channel, task, test_set)
                row = {
                    "texture": texture, "labels_per_class": n, "train_images": 6 * n,
                    "head_val": head.metrics.accuracy, "head_test": head_test, "head_job_s": head_wall, "head_cached_job_s": cached_wall, "head_cached_fit_s": cached_fit,
                    "lora_val": lora.metrics.accuracy, "lora_test": lora_test, "lora_job_s": lora_wall - (scratch_s or 0.0),
                    "scratch_val": lora.scratch_metrics.accuracy if scratch else None, "scratch_s": scratch_s, "val_n": lora.metrics.n,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(30)

    if not args.skip_latency:
        # Serving latency while a LoRA job trains with the defaults (1 thread, niced).
        data_dir2 = Path(tempfile.mkdtemp(prefix="edgetl-bench-lat-"))
        if shared_store.is_dir():
            (data_dir2 / "store").symlink_to(shared_store)
        proc, address = start_server(data_dir2, 1)
        try:
            channel = grpc.insecure_channel(address)
            image = png(cv2.resize(next(make_images("brick", ("ok",), 1, 224))[1], (224, 224)))
            latency_p(channel, image, 3)
            idle = latency_p(channel, image, 20)
            models = model_pb2_grpc.ModelServiceStub(channel)
            models.CreateTask(model_pb2.CreateTaskRequest(name="lat", class_names=list(CLASSES)))
            labels = adapt_pb2_grpc.LabelServiceStub(channel)
            for kind, img in make_images("brick", CLASSES, 20, args.size, seed=3):
                labels.AddLabel(adapt_pb2.AddLabelRequest(task="lat", image=image_pb2.Image(encoded=png(img)), class_name=kind))
            stub = adapt_pb2_grpc.TrainingServiceStub(channel)
            job = stub.StartTraining(adapt_pb2.StartTrainingRequest(task="lat", method="lora", options=adapt_pb2.TrainingOptions(epochs=50)))
            for event in stub.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id)):
                if event.phase == "train" and event.epoch >= 1:
                    break
            busy = latency_p(channel, image, 20)
            stub.CancelJob(adapt_pb2.CancelJobRequest(job_id=job.id))
            results["latency"] = {"idle": idle, "training": busy, "p99_ratio": busy["p99_ms"] / idle["p99_ms"], "p50_ratio": busy["p50_ms"] / idle["p50_ms"]}
            print(json.dumps(results["latency"]), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)

    print("\n| texture | labels/class | head val / test | LoRA val / test | scratch val | head job s (cached: job / fit) | LoRA job s | scratch s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        scratch = f"{r['scratch_val']:.3f}" if r["scratch_val"] is not None else "-"
        scratch_s = f"{r['scratch_s']:.0f}" if r["scratch_s"] else "-"
        print(
            f"| {r['texture']} | {r['labels_per_class']} | {r['head_val']:.3f} / {r['head_test']:.3f} | {r['lora_val']:.3f} / {r['lora_test']:.3f} | {scratch} | "
            f"{r['head_job_s']:.1f} ({r['head_cached_job_s']:.1f} / {r['head_cached_fit_s']:.2f}) | {r['lora_job_s']:.0f} | {scratch_s} |"
        )
    for n in sorted({r["labels_per_class"] for r in rows}):
        sel = [r for r in rows if r["labels_per_class"] == n]
        print(f"mean at {n}/class: head test {np.mean([r['head_test'] for r in sel]):.3f}, LoRA test {np.mean([r['lora_test'] for r in sel]):.3f}")
    if "latency" in results:
        lat = results["latency"]
        print(f"\nclassify latency idle p50/p99 {lat['idle']['p50_ms']:.2f}/{lat['idle']['p99_ms']:.2f} ms; during LoRA training {lat['training']['p50_ms']:.2f}/{lat['training']['p99_ms']:.2f} ms; p99 ratio {lat['p99_ratio']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
