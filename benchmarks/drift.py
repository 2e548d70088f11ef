"""Drift monitoring on a real server: shifted streams detected, stable streams quiet, and the cost.

    python benchmarks/drift.py [--stable 2000] [--shifted 1000] [--surfaces brick wood gravel] [--out FILE]

One real `edgetl serve` process on loopback. For each surface, tasks are
trained on the same labels (20 per class of the six defect classes, drawn
by the `strokes` generator on that surface, a head with today's defaults);
one task per stream, so each stream starts from a fresh monitor. Streams
are 224 px JPEGs of new parts (other seeds), in a line's class mix (90 %
ok, 2 % of each defect):

- ``stable``: more of the same, `--stable` images: every alarm is a false one;
- shifted streams: `burn_in` images of the stable line (the baseline the
  class-mix and confidence tests need), then `--shifted` images of a
  changed line: brighter light, lower contrast, out of focus, sensor
  noise, a camera turned by 20 degrees, another material, or a defect
  rate of 50 %. Detection is counted in images from the change.

The state is read with GetTask after every 50 images. Then, in-process,
the cost of `DriftMonitor.observe` per image (the only part on the serving
path) against the server's measured time per image.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.defects import CLASSES, GENERATORS
from benchmarks.defects.surfaces import part
from benchmarks.serve_overhead import machine, start_server

LINE_MIX = [0.9] + [0.02] * 5
DEFECT_MIX = [0.5] + [0.1] * 5
GENERATOR = "strokes"
POLL = 50


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)


#: name -> (what changes on the line, image transform, class mix, surface override)
SHIFTS = {
    "brightness": ("lamp brighter: +40 grey levels", lambda img, rng: np.clip(img.astype(np.int16) + 40, 0, 255).astype(np.uint8), LINE_MIX, None),
    "contrast": ("contrast x0.6 (a dimmer, flatter light)", lambda img, rng: np.clip((img - img.mean()) * 0.6 + img.mean(), 0, 255).astype(np.uint8), LINE_MIX, None),
    "blur": ("out of focus: Gaussian blur sigma 2 px", lambda img, rng: cv2.GaussianBlur(img, (0, 0), 2.0), LINE_MIX, None),
    "noise": ("sensor noise: Gaussian sigma 12 grey levels", lambda img, rng: np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8), LINE_MIX, None),
    "rotation": ("camera turned by 20 degrees", lambda img, rng: _rotate(img, 20), LINE_MIX, None),
    "material": ("another material (the next surface in the list)", lambda img, rng: img, LINE_MIX, "next"),
    "defect_rate": ("defect rate 10 % -> 50 %", lambda img, rng: img, DEFECT_MIX, None),
}


def stream(surface: str, n: int, seed: int, mix=LINE_MIX, transform=None):
    """`n` (class, JPEG bytes) of a line: parts drawn in `mix`, optionally transformed."""
    draw = GENERATORS[GENERATOR].draw
    rng = np.random.default_rng([seed, sum(map(ord, surface))])
    for _ in range(n):
        kind = CLASSES[rng.choice(len(CLASSES), p=mix)]
        img = draw(part(surface, 224, rng), kind, rng)
        if transform is not None:
            img = transform(img, rng)
        yield kind, cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def observe_cost(reference_path: Path, repeats: int = 20_000) -> float:
    """µs per DriftMonitor.observe call with a real reference (windows closing included)."""
    from edgetl.monitor.monitor import DriftMonitor, DriftSettings
    from edgetl.monitor.reference import DriftReference

    reference = DriftReference.load(reference_path)
    tmp = Path(tempfile.mkdtemp(prefix="edgetl-drift-cost-"))
    try:
        monitor = DriftMonitor(tmp / "edgetl.db", DriftSettings())
        rng = np.random.default_rng(0)
        embeddings = rng.normal(0, 1, (256, reference.dim)).astype(np.float32)
        probs = rng.dirichlet(np.ones(len(CLASSES)), 256).astype(np.float32)
        started = time.perf_counter()
        for i in range(repeats):
            monitor.observe("t", "1", reference, len(CLASSES), embeddings[i % 256], probs[i % 256])
        cost = (time.perf_counter() - started) / repeats * 1e6
        monitor.close()
        return cost
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stable", type=int, default=2000, help="images per stable stream")
    parser.add_argument("--shifted", type=int, default=1000, help="images after the change in a shifted stream")
    parser.add_argument("--surfaces", nargs="+", default=["brick", "wood", "gravel"])
    parser.add_argument("--shifts", nargs="+", default=list(SHIFTS))
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "edgetl-data", help="its store/ (the backbone export) is reused")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import grpc

    from edgetl.api.v1 import (
        adapt_pb2,
        adapt_pb2_grpc,
        image_pb2,
        inference_pb2,
        inference_pb2_grpc,
        model_pb2,
        model_pb2_grpc,
    )
    from edgetl.monitor.monitor import DriftSettings

    burn_in = DriftSettings().burn_in
    work = Path(tempfile.mkdtemp(prefix="edgetl-drift-bench-"))
    (args.data_dir / "store").mkdir(parents=True, exist_ok=True)
    (work / "store").symlink_to((args.data_dir / "store").resolve(), target_is_directory=True)
    proc, address, _ = start_server(work, ["--providers", "cpu", "--terminal-port", "0"])
    results = {"machine": machine(), "command": " ".join(sys.argv), "rows": []}
    try:
        channel = grpc.insecure_channel(address)
        models = model_pb2_grpc.ModelServiceStub(channel)
        labels = adapt_pb2_grpc.LabelServiceStub(channel)
        training = adapt_pb2_grpc.TrainingServiceStub(channel)
        classify = inference_pb2_grpc.InferenceServiceStub(channel).Classify
        pool = ThreadPoolExecutor(args.concurrency)

        def train(task: str, surface: str) -> None:
            from benchmarks.defects import make_set

            models.CreateTask(model_pb2.CreateTaskRequest(name=task, class_names=list(CLASSES)), timeout=60)
            for kind, img in make_set(surface, GENERATOR, 20, seed=0):
                data = cv2.imencode(".png", img)[1].tobytes()
                labels.AddLabel(adapt_pb2.AddLabelRequest(task=task, image=image_pb2.Image(encoded=data), class_name=kind), timeout=30)
            job = training.StartTraining(adapt_pb2.StartTrainingRequest(task=task, method="head"), timeout=30)
            final = list(training.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=900))[-1].job
            if not final.activated:
                raise RuntimeError(f"task {task}: not activated ({final.gate.message})")

        def feed(task: str, images, start_index: int, watch: dict) -> int:
            """Classify in chunks of POLL; note the first image count at which each state was seen."""
            sent = start_index
            chunk, kinds = [], []
            for kind, data in images:
                chunk.append(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=data)))
                kinds.append(kind)
                if len(chunk) == POLL:
                    answers = list(pool.map(lambda r: classify(r, timeout=60), chunk))
                    watch["correct"] = watch.get("correct", 0) + sum(a.label == k for a, k in zip(answers, kinds))
                    kinds = []
                    sent += len(chunk)
                    chunk = []
                    drift = models.GetTask(model_pb2.GetTaskRequest(name=task), timeout=10).drift
                    watch.setdefault("states", []).append((sent, drift.state, round(drift.statistic, 1), drift.test, {k: round(v, 1) for k, v in drift.last.items()}))
                    if drift.state != "ok":
                        watch.setdefault(drift.state, sent)
            return sent

        surfaces = args.surfaces
        for si, surface in enumerate(surfaces):
            started = time.perf_counter()
            task = f"{surface}-stable"
            train(task, surface)
            watch: dict = {}
            t0 = time.perf_counter()
            n = feed(task, stream(surface, args.stable, 100 + si), 0, watch)
            per_image_ms = (time.perf_counter() - t0) / n * 1000
            alarms = [s for s in watch["states"] if s[1] != "ok"]
            row = {
                "surface": surface, "stream": "stable", "images": n, "first_warning": watch.get("warning"), "first_drifted": watch.get("drifted"),
                "polls_not_ok": len(alarms), "polls": len(watch["states"]), "client_ms_per_image": per_image_ms,
                "accuracy": watch["correct"] / n,
            }
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
            for shift in args.shifts:
                what, transform, mix, other = SHIFTS[shift]
                task = f"{surface}-{shift}"
                train(task, surface)
                watch = {}
                before = feed(task, stream(surface, burn_in, 200 + si), 0, watch)
                quiet_before = all(s[1] == "ok" for s in watch["states"])
                shifted_surface = surfaces[(si + 1) % len(surfaces)] if other == "next" else surface
                if shifted_surface == surface and other == "next":
                    shifted_surface = "grass"
                after: dict = {}
                feed(task, stream(shifted_surface, args.shifted, 300 + si, mix, transform), 0, after)
                row = {
                    "surface": surface, "stream": shift, "change": what + (f" ({shifted_surface})" if other else ""), "quiet_before": quiet_before,
                    "images_before": before, "images_after": args.shifted, "warning_after": after.get("warning"), "drifted_after": after.get("drifted"),
                    "accuracy_before": watch["correct"] / before, "accuracy_after": after["correct"] / args.shifted, "last": after["states"][-1],
                }
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
            print(f"# {surface}: {time.perf_counter() - started:.0f} s", flush=True)

        reference = next(p for p in (work / "adapters").rglob("drift.npz"))
        per_call = observe_cost(reference)
        stable_ms = statistics.median(r["client_ms_per_image"] for r in results["rows"] if r["stream"] == "stable")
        results["observe_us"] = per_call
        results["classify_ms_per_image"] = stable_ms
        results["cost_share"] = per_call / 1000 / stable_ms
        print(json.dumps({k: v for k, v in results.items() if k != "rows"}), flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
