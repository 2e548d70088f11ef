"""Cold paths: time to first answer after a restart with N tasks, LoRA training time, memory per task.

    python benchmarks/cold.py [--heads 4] [--loras 2] [--labels 10] [--precision fp32|int8] [--out benchmarks/results/cold.json]

One data directory (the backbone export is shared from edgetl-data/store when
it is there, as after any first start), built up in three stages, with a real
`edgetl serve` restarted after each:

0. the built-in task only;
1. plus --heads head tasks (6 classes of edgetl.synthetic, --labels per class);
2. plus --loras LoRA tasks (the same, default LoRA options).

After each restart: seconds from the process starting to `ready`, then the
first Classify of every task (ms), and the serving process's resident memory
once every task has answered. Memory per extra task is the difference between
stages divided by the tasks added. LoRA training time is the job's wall time
per 100 labelled images.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.adapt import train  # noqa: E402
from benchmarks.serve_overhead import machine, rss_mb  # noqa: E402
from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc  # noqa: E402
from edgetl.synthetic import CLASSES, make_images  # noqa: E402


def start(data_dir: Path):
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgetl", "serve", "--data-dir", str(data_dir), "--port", "0", "--metrics-port", "0", "--providers", "cpu", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    if "ready" not in line:
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, re.search(r"ready on (\S+)", line).group(1), time.perf_counter() - started


def restart_and_measure(data_dir: Path, tasks: list[str], image: bytes) -> dict:
    import grpc

    proc, address, ready_s = start(data_dir)
    try:
        stub = inference_pb2_grpc.InferenceServiceStub(grpc.insecure_channel(address))
        first_ms = {}
        for task in tasks:
            t = time.perf_counter()
            stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=image)), timeout=60)
            first_ms[task] = (time.perf_counter() - t) * 1000
        all_answered_s = ready_s + sum(first_ms.values()) / 1000
        rss, peak = rss_mb(proc.pid)
        return {"tasks": len(tasks), "ready_s": ready_s, "first_answer_ms": first_ms, "all_answered_s": all_answered_s, "rss_mb": rss, "peak_rss_mb": peak}
    finally:
        proc.terminate()
        proc.wait(30)


def add_task(channel, name: str, labels: int, seed: int) -> int:
    models, store = model_pb2_grpc.ModelServiceStub(channel), adapt_pb2_grpc.LabelServiceStub(channel)
    models.CreateTask(model_pb2.CreateTaskRequest(name=name, class_names=list(CLASSES)))
    images = list(make_images("brick", CLASSES, labels, 224, seed=seed))
    for kind, img in images:
        store.AddLabel(adapt_pb2.AddLabelRequest(task=name, image=image_pb2.Image(encoded=cv2.imencode(".png", img)[1].tobytes()), class_name=kind))
    return len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--loras", type=int, default=2)
    parser.add_argument("--labels", type=int, default=10, help="labels per class (6 classes)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="of every trained adapter (int8: each task's own quantized model)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import grpc

    data_dir = Path(tempfile.mkdtemp(prefix="edgetl-cold-"))
    shared_store = ROOT / "edgetl-data" / "store"
    if shared_store.is_dir():
        (data_dir / "store").symlink_to(shared_store)
    image = cv2.imencode(".png", next(iter(make_images("brick", ("ok",), 1, 224, seed=99)))[1])[1].tobytes()
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "args": {k: str(v) for k, v in vars(args).items()}, "stages": [], "lora_jobs": [], "head_jobs": []}
    tasks = ["imagenet"]
    results["stages"].append({"stage": "built-in task only", **restart_and_measure(data_dir, tasks, image)})
    print(json.dumps(results["stages"][-1]), flush=True)

    for method, count in (("head", args.heads), ("lora", args.loras)):
        proc, address, _ = start(data_dir)
        try:
            channel = grpc.insecure_channel(address)
            for i in range(count):
                name = f"{method}-{i}"
                n = add_task(channel, name, args.labels, seed=i)
                final, wall, fit_s, _ = train(channel, name, method, precision=args.precision)
                results[f"{method}_jobs"].append({"task": name, "images": n, "job_s": wall, "fit_s": fit_s, "per_100_images_s": wall / n * 100})
                print(json.dumps(results[f"{method}_jobs"][-1]), flush=True)
                tasks.append(name)
        finally:
            proc.terminate()
            proc.wait(30)
        results["stages"].append({"stage": f"+ {count} {method} tasks", **restart_and_measure(data_dir, tasks, image)})
        print(json.dumps(results["stages"][-1]), flush=True)

    s0, s1, s2 = results["stages"]
    results["mb_per_head_task"] = (s1["rss_mb"] - s0["rss_mb"]) / max(1, args.heads)
    results["mb_per_lora_task"] = (s2["rss_mb"] - s1["rss_mb"]) / max(1, args.loras)
    print(f"\nMachine: {results['machine']}; {results['date']}\n")
    print("| after a restart with | ready s | first answer ms (median / slowest task) | all tasks answered s | resident MB |")
    print("|---|---|---|---|---|")
    for s in results["stages"]:
        firsts = list(s["first_answer_ms"].values())
        print(f"| {s['stage']} ({s['tasks']} tasks) | {s['ready_s']:.2f} | {statistics.median(firsts):.0f} / {max(firsts):.0f} | {s['all_answered_s']:.2f} | {s['rss_mb']:.0f} |")
    print(f"\nMemory per extra head task: {results['mb_per_head_task']:.1f} MB; per LoRA task: {results['mb_per_lora_task']:.1f} MB")
    for method in ("head", "lora"):
        jobs = results[f"{method}_jobs"]
        if jobs:
            print(f"{method} training: {statistics.median(j['job_s'] for j in jobs):.1f} s per job of {jobs[0]['images']} images, {statistics.median(j['per_100_images_s'] for j in jobs):.1f} s per 100 images")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
