"""INT8 against FP32 in one run: accuracy on held-out defects, and speed through a real server.

    python benchmarks/int8.py [--surfaces ...] [--labels 20 50] [--seeds 0] [--methods head]
                              [--seconds 5] [--rounds 3] [--skip-speed] [--skip-accuracy]
                              [--out benchmarks/results/int8.json] [--cells benchmarks/results/int8-cells.jsonl]

Accuracy. For every cell (surface, held-out generator, labels per class,
seed) the same labels train two adapters with the training process's own
`run()` (as benchmarks/heldout.py does): `precision=fp32` and
`precision=int8`. Both classify the cell's 30-per-class test set (another
seed, never seen). Each INT8 row also records the gate's decision: the job
compares the INT8 holdout model with the same adapter in FP32 on the
validation split, image by image, and keeps one that loses beyond chance as
a candidate (edgetl.adapt.gate); beside it, what comparing the two
accuracies alone would have decided.

Speed. A real `edgetl serve` (CPU, defaults) serves two tasks trained on the
same 20 labels per class of brick: one FP32 head (on the shared backbone),
one INT8 head (its own quantized backbone), both activated with --force (the
accuracy part reports the gate). A client on the same machine
sends 224 px JPEG parts with `Classify`: at one caller (p50 latency) and at
four (requests/s), FP32 and INT8 interleaved over rounds. After the server
stops, the same two models are timed in this process with no server
(decode + preprocess + one ONNX Runtime run): the raw limit for each, and the
server's figures are also given as a ratio to it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.defects import CLASSES, HELD_OUT, make_set
from benchmarks.defects.surfaces import SURFACES
from benchmarks.serve_overhead import machine, start_server

PRECISIONS = ("fp32", "int8")


def accuracy_cells(args) -> list[dict]:
    """Every cell, each appended to `args.cells` as a JSON line as soon as it ends (a rerun resumes)."""
    from benchmarks.heldout import Bench
    from edgetl.adapt.gate import gate

    rows = [json.loads(line) for line in args.cells.read_text().splitlines() if line.strip()] if args.cells.is_file() else []
    done = {(r["surface"], r["generator"], r["labels"], r["seed"], r["method"], r["precision"]) for r in rows}
    bench = Bench(args.store, args.threads)
    try:
        # Label counts outermost: a run stopped part-way has whole tables for the first ones.
        for n, seed, generator, surface, method in itertools.product(args.labels, args.seeds, args.generators, args.surfaces, args.methods):
            cell = {"surface": surface, "generator": generator, "labels": n, "seed": seed, "method": method}
            for precision in PRECISIONS:
                if (surface, generator, n, seed, method, precision) in done:
                    continue
                got = bench.cell(surface, generator, n, seed, method, {"precision": precision})
                row = {**cell, "precision": precision, **{k: got[k] for k in ("test_accuracy", "val_accuracy", "val_n", "train_s")}}
                int8 = got["options"].get("int8")
                if int8:
                    evidence = {"metrics": {"accuracy": got["val_accuracy"]}, "fp32_metrics": int8["fp32_metrics"], "int8_paired": got["int8_paired"]}
                    row["gate_passed"], row["gate"] = gate(evidence, force=False, tolerance=0.0)
                    row["fp32_val_accuracy"] = int8["fp32_metrics"]["accuracy"]
                    row["int8_paired"] = got["int8_paired"]
                    # What a gate comparing the two accuracies alone would have done (the first design).
                    row["strict_gate_passed"] = got["val_accuracy"] >= row["fp32_val_accuracy"]
                    row["quantize_s"] = int8["quantize_s"]
                rows.append(row)
                args.cells.parent.mkdir(parents=True, exist_ok=True)
                with open(args.cells, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{surface:7} {generator:7} {n:3}/class seed {seed} {method:5} {precision}  test {row['test_accuracy']:.3f}  val {row['val_accuracy']:.3f}  {row['train_s']:.1f} s"
                      + (f"  gate {'passed' if row['gate_passed'] else 'kept as candidate'}" if int8 else ""), flush=True)
    finally:
        bench.close()
    return rows


def speed(args) -> dict:
    import cv2
    import grpc
    import onnxruntime as ort

    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc
    from edgetl.runtime.preprocess import EncodedImage, Preprocessor, decode

    jpeg = lambda img: cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="edgetl-int8-bench-"))
    (work / "store").symlink_to(args.store.resolve(), target_is_directory=True)
    parts = [jpeg(img) for _, img in make_set("brick", "relief", 2, seed=1000)]
    tasks = {"fp32": "brick-fp32", "int8": "brick-int8"}
    models: dict[str, Path] = {}
    samples: dict[str, list[float]] = {f"{p} c={c}": [] for p in PRECISIONS for c in (1, 4)}
    proc, address, _ = start_server(work, ["--providers", "cpu", "--no-terminal"])
    try:
        channel = grpc.insecure_channel(address)
        labels = adapt_pb2_grpc.LabelServiceStub(channel)
        training = adapt_pb2_grpc.TrainingServiceStub(channel)
        labelled = [(kind, jpeg(img)) for kind, img in make_set("brick", "relief", 20, seed=0)]
        for precision, task in tasks.items():
            model_pb2_grpc.ModelServiceStub(channel).CreateTask(model_pb2.CreateTaskRequest(name=task, class_names=list(CLASSES)), timeout=300)
            for kind, data in labelled:
                labels.AddLabel(adapt_pb2.AddLabelRequest(task=task, image=image_pb2.Image(encoded=data), class_name=kind), timeout=30)
            # --force: this part times the two models; whether the gate would pass INT8 here is the accuracy part's question.
            request = adapt_pb2.StartTrainingRequest(task=task, method="head", options=adapt_pb2.TrainingOptions(precision=precision), force=True)
            job = training.StartTraining(request, timeout=30)
            final = list(training.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=900))[-1].job
            if not final.activated:
                raise RuntimeError(f"{task}: {final.state} {final.error or final.gate}")
            print(f"{task}: {final.gate}", flush=True)
        models["fp32"] = next((work / "store" / "exports").glob("efficientnet_lite0-*/model.onnx"))
        models["int8"] = next((work / "adapters" / tasks["int8"]).glob("*/model.onnx"))

        def call(stub, task, data):
            stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=data)), timeout=30)

        def one_caller(task: str) -> float:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            times = []
            deadline = time.perf_counter() + args.seconds
            while time.perf_counter() < deadline:
                for data in parts:
                    t = time.perf_counter()
                    call(stub, task, data)
                    times.append((time.perf_counter() - t) * 1000)
            return statistics.median(times)

        def four_callers(task: str) -> float:
            count = [0] * 4
            deadline = time.perf_counter() + args.seconds

            def worker(i: int) -> None:
                stub = inference_pb2_grpc.InferenceServiceStub(grpc.insecure_channel(address))
                while time.perf_counter() < deadline:
                    call(stub, task, parts[count[i] % len(parts)])
                    count[i] += 1

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return sum(count) / args.seconds

        for precision in PRECISIONS:  # warm both paths
            for data in parts:
                call(inference_pb2_grpc.InferenceServiceStub(channel), tasks[precision], data)
        for r in range(args.rounds):
            for precision in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:
                samples[f"{precision} c=1"].append(one_caller(tasks[precision]))
                samples[f"{precision} c=4"].append(four_callers(tasks[precision]))
        channel.close()
        models = {p: Path(shutil.copy(m, work / f"{p}.onnx")) for p, m in models.items()}
    finally:
        proc.terminate()
        proc.communicate(timeout=30)

    # The raw limit, with no server running: decode + preprocess + one run of each model.
    manifest = json.loads(next((work / "store" / "exports").glob("efficientnet_lite0-*/manifest.json")).read_text())
    spec = manifest["spec"]
    preprocess = Preprocessor(tuple(spec["input_size"]), spec["color_order"], spec["mean"], spec["std"])
    raw = {}
    for precision, path in models.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        output = session.get_outputs()[0].name
        times = []
        for i in range(len(parts) * (args.rounds + 2)):
            t = time.perf_counter()
            session.run([output], {"image": preprocess(decode(EncodedImage(parts[i % len(parts)]), 10**9))[None]})
            times.append((time.perf_counter() - t) * 1000)
        raw[precision] = statistics.median(times[len(parts) :])
    shutil.rmtree(work, ignore_errors=True)
    out = {"raw_ms": raw, "rows": []}
    for precision in PRECISIONS:
        p50 = statistics.median(samples[f"{precision} c=1"])
        rps = statistics.median(samples[f"{precision} c=4"])
        out["rows"].append({
            "precision": precision, "raw_ms": round(raw[precision], 2), "p50_ms_c1": round(p50, 2),
            "p50_range_c1": [round(min(samples[f"{precision} c=1"]), 2), round(max(samples[f"{precision} c=1"]), 2)],
            "rps_c4": round(rps, 1), "rps_range_c4": [round(min(samples[f"{precision} c=4"]), 1), round(max(samples[f"{precision} c=4"]), 1)],
            "raw_rps": round(1000 / raw[precision], 1),
        })
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """Mean test accuracy per (labels, method, precision) and per surface; the gate's decisions."""
    table = []
    keys = sorted({(r["labels"], r["method"]) for r in rows})
    for n, method in keys:
        for precision in PRECISIONS:
            cells = [r for r in rows if r["labels"] == n and r["method"] == method and r["precision"] == precision]
            by_surface = {}
            for r in cells:
                by_surface.setdefault(r["surface"], []).append(r["test_accuracy"])
            entry = {
                "labels": n, "method": method, "precision": precision, "cells": len(cells),
                "mean_test_accuracy": round(statistics.mean(r["test_accuracy"] for r in cells), 3),
                "by_surface": {s: round(statistics.mean(v), 3) for s, v in by_surface.items()},
                "train_s_median": round(statistics.median(r["train_s"] for r in cells), 1),
            }
            if precision == "int8":
                entry["gate_kept_as_candidate"] = sum(not r["gate_passed"] for r in cells)
                entry["strict_gate_kept_as_candidate"] = sum(not r.get("strict_gate_passed", True) for r in cells)
                # What an operator gets: INT8 where the gate passed it, else FP32 stays (the job's adapter is a candidate).
                fp32 = {(r["surface"], r["generator"], r["seed"]): r["test_accuracy"] for r in rows if r["labels"] == n and r["method"] == method and r["precision"] == "fp32"}
                served = [r["test_accuracy"] if r["gate_passed"] else fp32[(r["surface"], r["generator"], r["seed"])] for r in cells]
                entry["mean_test_accuracy_as_gated"] = round(statistics.mean(served), 3)
            table.append(entry)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surfaces", nargs="+", default=list(SURFACES))
    parser.add_argument("--generators", nargs="+", default=list(HELD_OUT))
    parser.add_argument("--labels", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["head"])
    parser.add_argument("--threads", type=int, default=2, help="training threads (accuracy part)")
    parser.add_argument("--seconds", type=float, default=5, help="per speed cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--store", type=Path, default=ROOT / "edgetl-data" / "store")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "int8.json", help="the speed part and the summary")
    parser.add_argument("--cells", type=Path, default=ROOT / "benchmarks" / "results" / "int8-cells.jsonl", help="accuracy cells, one JSON line each")
    args = parser.parse_args()

    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result.update(machine=machine(), command=" ".join(sys.argv))
    if not args.skip_speed:
        result["speed"] = speed(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))  # before the long part
    if not args.skip_accuracy:
        accuracy_cells(args)
    if args.cells.is_file():  # with --skip-speed --skip-accuracy: the tables from the files, nothing run
        result["accuracy"] = summarise([json.loads(line) for line in args.cells.read_text().splitlines() if line.strip()])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    print(f"\nmachine: {result['machine']}")
    if result.get("speed"):
        print("\n| precision | raw ONNX Runtime ms (no server) | Classify p50 ms, 1 caller [range] | vs raw | requests/s, 4 callers [range] | vs raw |")
        print("|---|---|---|---|---|---|")
        for r in result["speed"]["rows"]:
            print(f"| {r['precision']} | {r['raw_ms']:.2f} | {r['p50_ms_c1']:.2f} [{r['p50_range_c1'][0]:.2f}–{r['p50_range_c1'][1]:.2f}] | {r['p50_ms_c1'] / r['raw_ms']:.2f}× "
                  f"| {r['rps_c4']:.0f} [{r['rps_range_c4'][0]:.0f}–{r['rps_range_c4'][1]:.0f}] | {r['rps_c4'] / r['raw_rps']:.2f}× |")
    if result.get("accuracy"):
        print("\n| labels/class | method | precision | mean test accuracy | as gated | kept as candidate (paired gate / accuracies alone) | " + " | ".join(args.surfaces) + " |")
        print("|---|---|---|---|---|---|" + "---|" * len(args.surfaces))
        for e in result["accuracy"]:
            gated = f"{e['mean_test_accuracy_as_gated']:.3f}" if "mean_test_accuracy_as_gated" in e else "–"
            kept = f"{e['gate_kept_as_candidate']} / {e['strict_gate_kept_as_candidate']} of {e['cells']}" if "gate_kept_as_candidate" in e else "–"
            print(f"| {e['labels']} | {e['method']} | {e['precision']} | {e['mean_test_accuracy']:.3f} | {gated} | {kept} | "
                  + " | ".join(f"{e['by_surface'].get(s, float('nan')):.3f}" for s in args.surfaces) + " |")


if __name__ == "__main__":
    main()
