"""One image, several tasks: what N tasks cost with one ClassifyTasks call against N Classify calls.

    python benchmarks/multitask.py [--rounds 5] [--out benchmarks/results/multitask.json]

A real `edgetl serve` on loopback (CPU) with an anomaly task (20 good brick
parts) and three defect classifiers (heads, 10 labels per class each), all on
the built-in backbone. For the same ten 224 px PNG parts, interleaved over
rounds so the machine's drift hits every row alike, it times at the client:

- one classifier alone (one backbone run: the unit);
- N tasks asked one Classify call each (N backbone runs);
- the same N tasks in one ClassifyTasks call (one backbone run);

and, in the same process, the raw limit: decode, preprocess and one ONNX
Runtime run of the same export, no server. Rows give medians and the ratio to
the unit. Every ClassifyTasks answer must say it took one backbone run
(tests/server/test_classify_tasks.py checks that against /metrics).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.defects import CLASSES, make_set
from benchmarks.serve_overhead import machine, start_server

CLASSIFIERS = ("station-1", "station-2", "station-3")
ANOMALY = "surface"
#: The task sets timed: three classifiers (heads only), an anomaly verdict and a defect class, all four.
SETS = {"3 classifiers": CLASSIFIERS, "a classifier and the anomaly task": (CLASSIFIERS[0], ANOMALY), "all 4 tasks": (*CLASSIFIERS, ANOMALY)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", type=Path, default=ROOT / "edgetl-data" / "store")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "multitask.json")
    args = parser.parse_args()

    import cv2
    import grpc
    import onnxruntime as ort

    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.runtime.preprocess import EncodedImage, decode
    from edgetl.runtime.session import BackboneSession
    from edgetl.runtime.store import ModelStore
    from edgetl.settings import Settings

    png = lambda img: cv2.imencode(".png", img)[1].tobytes()  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="edgetl-multitask-bench-"))
    (work / "store").symlink_to(args.store.resolve(), target_is_directory=True)
    parts = [png(img) for _, img in make_set("brick", "relief", 2, seed=1000)]  # 2 of each class: 12 parts
    result = {"machine": machine(), "command": " ".join(sys.argv), "images": f"{len(parts)} brick parts, 224 px PNG", "rounds": args.rounds}

    # The raw limit: what one backbone run of the same export costs with no server around it.
    settings = Settings.load(data_dir=work, providers=("cpu",))
    store = ModelStore(work / "store")
    record = store.ensure(BackboneRegistry.from_settings(settings).get(settings.default_backbone), settings.to_dict())
    session = BackboneSession(record, settings, store.trt_cache)
    raw = ort.InferenceSession(str(record.onnx_path), providers=["CPUExecutionProvider"])

    def raw_ms(data: bytes) -> float:
        t = time.perf_counter()
        raw.run(["logits"], {"image": session.preprocess(decode(EncodedImage(data), 10**9))[None]})
        return (time.perf_counter() - t) * 1000

    # Timed before the server starts: a session in this process would spin its threads beside the server's.
    raw_times = [raw_ms(data) for data in parts * 2][len(parts) :]
    raw_times += [raw_ms(data) for _ in range(args.rounds - 1) for data in parts]
    del raw, session

    proc, address, _ = start_server(work, ["--providers", "cpu", "--no-terminal"])
    try:
        channel = grpc.insecure_channel(address)
        models = model_pb2_grpc.ModelServiceStub(channel)
        labels = adapt_pb2_grpc.LabelServiceStub(channel)
        training = adapt_pb2_grpc.TrainingServiceStub(channel)

        def train(task: str, method: str) -> None:
            job = training.StartTraining(adapt_pb2.StartTrainingRequest(task=task, method=method), timeout=30)
            final = list(training.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=900))[-1].job
            if not final.activated:
                raise RuntimeError(f"{task}: {final.state} {final.error or final.gate}")

        models.CreateTask(model_pb2.CreateTaskRequest(name=ANOMALY, kind="anomaly"), timeout=300)
        for kind, img in make_set("brick", "relief", 20, seed=0):
            if kind == "ok":
                labels.AddLabel(adapt_pb2.AddLabelRequest(task=ANOMALY, image=image_pb2.Image(encoded=png(img)), class_name="good"), timeout=30)
        train(ANOMALY, "anomaly")
        labelled = [(kind, png(img)) for kind, img in make_set("brick", "relief", 10, seed=0)]
        for task in CLASSIFIERS:
            models.CreateTask(model_pb2.CreateTaskRequest(name=task, class_names=list(CLASSES)), timeout=300)
            for kind, data in labelled:
                labels.AddLabel(adapt_pb2.AddLabelRequest(task=task, image=image_pb2.Image(encoded=data), class_name=kind), timeout=30)
            train(task, "head")

        stub = inference_pb2_grpc.InferenceServiceStub(channel)

        def separate(tasks, data) -> float:
            t = time.perf_counter()
            for task in tasks:
                stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=data)), timeout=30)
            return (time.perf_counter() - t) * 1000

        def together(tasks, data) -> float:
            t = time.perf_counter()
            r = stub.ClassifyTasks(inference_pb2.ClassifyTasksRequest(tasks=list(tasks), image=image_pb2.Image(encoded=data)), timeout=30)
            assert r.backbone_runs == 1 and len(r.answers) == len(tasks)
            return (time.perf_counter() - t) * 1000

        rows = {"raw ONNX Runtime, decode + one run, no server (timed first)": raw_times, "one classifier, Classify": []}
        for name, tasks in SETS.items():
            rows[f"{name}: {len(tasks)} Classify calls"] = []
            rows[f"{name}: one ClassifyTasks call"] = []
        for data in parts:  # warm every path
            separate(SETS["all 4 tasks"], data), together(SETS["all 4 tasks"], data)
        for _ in range(args.rounds):
            for data in parts:
                rows["one classifier, Classify"].append(separate(CLASSIFIERS[:1], data))
                for name, tasks in SETS.items():
                    rows[f"{name}: {len(tasks)} Classify calls"].append(separate(tasks, data))
                    rows[f"{name}: one ClassifyTasks call"].append(together(tasks, data))
        unit = statistics.median(rows["one classifier, Classify"])
        result["rows"] = [
            {"what": what, "median_ms": round(statistics.median(ms), 2), "p90_ms": round(sorted(ms)[int(0.9 * (len(ms) - 1))], 2), "vs_one_task": round(statistics.median(ms) / unit, 2)}
            for what, ms in rows.items()
        ]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"machine: {result['machine']}; {result['images']}; {args.rounds} rounds\n")
    print("| request | median ms (client) | p90 ms | vs one task |")
    print("|---|---|---|---|")
    for row in result["rows"]:
        print(f"| {row['what']} | {row['median_ms']:.1f} | {row['p90_ms']:.1f} | {row['vs_one_task']:.2f}× |")


if __name__ == "__main__":
    main()
