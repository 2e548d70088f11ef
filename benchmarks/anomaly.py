"""Good-only anomaly detection on defects nobody here tuned on: image AUROC by good images, surface and defect kind.

    python benchmarks/anomaly.py run [--generators relief blend] [--surfaces ...] [--goods 1 5 10 20 50]
                                     [--seeds 0] [--variant NAME] [--option k=v ...]
    python benchmarks/anomaly.py report [--generators relief blend] [--variants NAME ...]
    python benchmarks/anomaly.py figure --surfaces brick --generators relief   # the README's heatmaps
    python benchmarks/anomaly.py serve --surfaces brick --generators relief    # a real server: added ms, enrolment ms
    python benchmarks/anomaly.py spinning --surfaces brick --generators relief # ORT's spinning threads and the score's cost

A cell is (surface, generator, seed, variant). Its good images are the
generator's `ok` parts of the surface (seed); its test set is 30 `ok` parts
and 30 of each defect kind drawn with another seed. For each number of good
images (the first n of the same draw, so the sets are nested) a bank is
fitted exactly as the training job fits it (edgetl.anomaly.model.fit, on the
exported backbone's maps through ONNX Runtime) and the test set is scored
as the server scores it. Recorded per n: image AUROC per defect kind (ok
against that kind), the false-alarm rate on the test's good parts and the
miss rate per kind at the calibrated threshold, the bank's size, and the
time to fit and to score one image (numpy only, the part serving adds to a
backbone run).

Tune on benchmarks.defects.TUNING generators (synthetic, strokes) and report
HELD_OUT (relief, blend) only. Pixel AUROC compares the anomaly map, resized to
the image, with the defect masks of benchmarks.defects.make_set_with_masks
(where drawing the defect changed the clean part).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.defects import CLASSES, HELD_OUT, TUNING, make_set, make_set_with_masks
from benchmarks.defects.surfaces import SURFACES

TEST_PER_CLASS = 30
TEST_SEED_OFFSET = 1000
DEFECTS = CLASSES[1:]


class Maps:
    """The exported backbone (ONNX Runtime, CPU) and the maps it gives an image in each view."""

    def __init__(self, store: Path, threads: int, maps: str = ""):
        from edgetl.backbones.registry import BackboneRegistry
        from edgetl.runtime.batcher import MicroBatcher
        from edgetl.runtime.session import BackboneSession
        from edgetl.runtime.store import ModelStore
        from edgetl.settings import Settings

        settings = Settings(data_dir=ROOT / "edgetl-data", providers=("cpu",), intra_op_threads=threads, metrics=False)
        backbone = BackboneRegistry.from_settings(settings).get(settings.default_backbone)
        model_store = ModelStore(store)
        record = model_store.ensure(backbone, settings.to_dict())
        self.session = BackboneSession(record, settings, model_store.trt_cache)
        self.batcher = MicroBatcher(self.session, settings.max_batch)
        from edgetl.anomaly.model import bank_maps

        # As the server chooses (bank_maps), or the maps a variant names (maps=stride8,stride16).
        self.names = tuple(maps.split(",")) if maps else bank_maps(record.manifest)

    def of(self, bgr: np.ndarray, views: int = 1) -> list[dict]:
        from edgetl.adapt.features import VIEWS

        x = self.session.preprocess(bgr)  # the generators draw BGR, as decode() returns it
        return [self.batcher.run(np.ascontiguousarray(VIEWS[v](x)), self.names).features for v in range(views)]


#: Pixel AUROC reads every PIXEL_STEP-th pixel in each direction (3,136 of a 224 px image): the map is 14 × 14.
PIXEL_STEP = 4


def _pixel_scores(anomaly_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The low-resolution map resized (bilinear) to the sampled pixels: what the heatmap shows, per pixel."""
    import cv2

    return cv2.resize(anomaly_map.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _pixel_auroc(images: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Pixel AUROC over a set of images (MVTec's way: every pixel of every image, defect pixels against the rest)."""
    from edgetl.anomaly.threshold import auroc

    scores = np.concatenate([s.ravel() for s, _ in images])
    inside = np.concatenate([m.ravel() for _, m in images])
    return auroc(scores[~inside], scores[inside])


def run_cells(args) -> None:
    from edgetl.anomaly.model import fit
    from edgetl.anomaly.threshold import auroc

    done = set()
    if args.results.is_file():
        done = {_key(json.loads(line)) for line in args.results.read_text().splitlines() if line.strip()}
    options = dict(_option(o) for o in args.option)
    views = int(options.get("views", 8))
    maps = Maps(args.store, args.threads, str(options.pop("maps", "")))  # maps=stride8,stride16: a variant the server does not run
    for seed in args.seeds:
        for surface in args.surfaces:
            for generator in args.generators:
                todo = [n for n in args.goods if _key({"surface": surface, "generator": generator, "goods": n, "seed": seed, "variant": args.variant}) not in done]
                if not todo:
                    continue
                goods = [img for _, (_, img) in zip(range(max(todo)), make_set(surface, generator, max(todo), seed=seed))]  # the ok parts come first
                good_maps = [maps.of(img, views) for img in goods]
                test = list(make_set_with_masks(surface, generator, TEST_PER_CLASS, seed=seed + TEST_SEED_OFFSET))
                # --tta V: each test part is also scored in its first V views (image scores averaged), in the same run.
                test_views = [(kind, maps.of(img, args.tta)) for kind, img, _ in test] if args.tta > 1 else []
                test_maps = [(kind, views[0]) for kind, views in test_views] or [(kind, maps.of(img)[0]) for kind, img, _ in test]
                test_masks = [mask[::PIXEL_STEP, ::PIXEL_STEP] for _, _, mask in test]
                for n in todo:
                    started = time.perf_counter()
                    model, summary = fit(good_maps[:n], maps.names, {**options, "views": views}, calibrated=n >= 2)
                    fit_s = time.perf_counter() - started
                    scores, score_ms, pixels = defaultdict(list), [], defaultdict(list)
                    for (kind, m), mask in zip(test_maps, test_masks):
                        t = time.perf_counter()
                        answer = model.answer(m)
                        score_ms.append((time.perf_counter() - t) * 1000)
                        scores[kind].append(answer.score)
                        pixels[kind].append((_pixel_scores(answer.map, mask.shape), mask))
                    good = np.array(scores["ok"])
                    tta = _tta_scores(model, good_maps[:n], test_views, args.tta) if test_views and n >= 2 else None
                    threshold = model.calibration.threshold if n >= 2 else float("nan")
                    row = {
                        "surface": surface, "generator": generator, "goods": n, "seed": seed, "variant": args.variant,
                        "auroc": {k: auroc(good, np.array(scores[k])) for k in DEFECTS},
                        "auroc_all": auroc(good, np.concatenate([scores[k] for k in DEFECTS])),
                        "pixel_auroc": {k: _pixel_auroc(pixels["ok"] + pixels[k]) for k in DEFECTS},
                        "false_alarm_rate": float((good > threshold).mean()) if n >= 2 else None,
                        "miss_rate": {k: float((np.array(scores[k]) <= threshold).mean()) for k in DEFECTS} if n >= 2 else None,
                        "guaranteed_false_alarm_rate": model.calibration.guaranteed_false_alarm_rate if n >= 2 else None,
                        "bank_patches": summary["bank_patches"], "bank_bytes": summary["bank_bytes"],
                        "fit_s": round(fit_s, 3), "score_ms_median": round(statistics.median(score_ms), 3), "options": summary["options"],
                        "threshold": threshold, "scores": {k: [round(float(v), 5) for v in vals] for k, vals in scores.items()},
                        # The calibration's evidence: each good image against the bank without it (a threshold rule can be replayed from these).
                        "loo": summary["leave_one_out_scores"],
                    }
                    if tta:
                        row["tta"] = tta
                    with open(args.results, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    worst = min(row["auroc"], key=row["auroc"].get)
                    print(
                        f"{surface:7} {generator:9} {n:2} good  seed {seed}  {args.variant:10} AUROC {statistics.mean(row['auroc'].values()):.3f} "
                        f"(worst {worst} {row['auroc'][worst]:.3f})  FAR {row['false_alarm_rate'] if n >= 2 else float('nan'):.3f}  "
                        f"bank {row['bank_patches']}  fit {fit_s:.1f} s  score {row['score_ms_median']:.1f} ms",
                        flush=True,
                    )


def _tta_scores(model, good_maps: list[list[dict]], test_views: list[tuple[str, list[dict]]], views: int) -> dict:
    """Image scores averaged over each part's first `views` views: the test parts, and the good images left out one at a time (every view)."""
    from edgetl.anomaly.bank import image_score
    from edgetl.anomaly.model import leave_one_out_scores
    from edgetl.anomaly.threshold import auroc

    scores = defaultdict(list)
    for kind, maps_per_view in test_views:
        scores[kind].append(float(np.mean([image_score(model.patch_scores(m)[0]) for m in maps_per_view[:views]])))
    loo = np.mean([leave_one_out_scores(model, [g[v] for g in good_maps]) for v in range(views)], axis=0)
    good = np.array(scores["ok"])
    return {
        "views": views, "auroc": {k: auroc(good, np.array(scores[k])) for k in DEFECTS},
        "scores": {k: [round(float(v), 5) for v in vals] for k, vals in scores.items()}, "loo": [round(float(v), 5) for v in loo],
    }


def figure(args) -> None:
    """The README's picture: a bank from 20 good parts, then test parts of each kind with their heatmaps."""
    import cv2

    from edgetl.anomaly.heatmap import overlay
    from edgetl.anomaly.model import fit

    surface, generator = args.surfaces[0], args.generators[0]
    maps = Maps(args.store, args.threads)
    goods = [img for _, (_, img) in zip(range(20), make_set(surface, generator, 20, seed=0))]
    model, _ = fit([maps.of(img, 8) for img in goods], maps.names)
    tiles = []
    firsts = {}
    for kind, img in make_set(surface, generator, 1, seed=TEST_SEED_OFFSET):
        firsts.setdefault(kind, img)
    for kind, img in firsts.items():
        answer = model.answer(maps.of(img)[0])
        tile = np.vstack([img, overlay(img, answer.map, answer.threshold)])
        verdict = "ANOMALY" if answer.anomalous else "good"
        cv2.putText(tile, f"{kind}: {verdict}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 2)
        cv2.putText(tile, f"{answer.score:.2f} / {answer.threshold:.2f}", (6, 244), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2)
        tiles.append(tile)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.hstack(tiles), [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(args.out)


def serve(args) -> None:
    """A real `edgetl serve`: an anomaly task from 20 good parts; training time, classify time
    against the same backbone's built-in task (the anomaly score's added cost), map cost, and
    online enrolment time per part (server-side and at the client)."""
    import shutil
    import tempfile

    import cv2
    import grpc

    from benchmarks.serve_overhead import machine, start_server
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc

    surface, generator = args.surfaces[0], args.generators[0]
    work = Path(tempfile.mkdtemp(prefix="edgetl-anomaly-bench-"))
    (work / "store").symlink_to(args.store.resolve(), target_is_directory=True)
    proc, address, _ = start_server(work, ["--providers", "cpu", "--no-terminal"])
    png = lambda img: cv2.imencode(".png", img)[1].tobytes()  # noqa: E731
    result = {"machine": machine(), "command": " ".join(sys.argv), "surface": surface, "generator": generator}
    try:
        channel = grpc.insecure_channel(address)
        model_pb2_grpc.ModelServiceStub(channel).CreateTask(model_pb2.CreateTaskRequest(name="surface", kind="anomaly"), timeout=300)
        labels = adapt_pb2_grpc.LabelServiceStub(channel)
        parts = [img for _, (_, img) in zip(range(20 + args.enrol), make_set(surface, generator, 20 + args.enrol, seed=0))]
        for img in parts[:20]:
            labels.AddLabel(adapt_pb2.AddLabelRequest(task="surface", image=image_pb2.Image(encoded=png(img)), class_name="good"), timeout=30)
        training = adapt_pb2_grpc.TrainingServiceStub(channel)
        started = time.perf_counter()
        job = training.StartTraining(adapt_pb2.StartTrainingRequest(task="surface", method="anomaly"), timeout=30)
        final = list(training.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=900))[-1].job
        result["train_s"] = round(time.perf_counter() - started, 2)
        result["gate"] = final.gate
        classify = inference_pb2_grpc.InferenceServiceStub(channel).Classify
        tests = [png(img) for _, img in make_set(surface, generator, 10, seed=TEST_SEED_OFFSET)]

        def median_ms(task: str, with_map: bool = False, rounds: int = 5) -> float:
            times = []
            for _ in range(rounds):
                for data in tests:
                    r = classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=data), anomaly_map=with_map), timeout=30)
                    times.append(r.timing.total_ms)
            return statistics.median(times)

        # Defect classifiers on the same labels (10 per class): a guided head (it searches a bank of
        # the ok class's patches, as the anomaly task does), a plain one, and the guided head
        # answering from 4 and 8 views of each image (serve_views: test-time augmentation).
        for task, pooling, views in (("guided", "guided", 1), ("plain", "global", 1), ("guided-4", "guided", 4), ("guided-8", "guided", 8)):
            model_pb2_grpc.ModelServiceStub(channel).CreateTask(model_pb2.CreateTaskRequest(name=task, class_names=list(CLASSES)), timeout=300)
            for kind, img in make_set(surface, generator, 10, seed=0):
                labels.AddLabel(adapt_pb2.AddLabelRequest(task=task, image=image_pb2.Image(encoded=png(img)), class_name=kind), timeout=30)
            job = training.StartTraining(adapt_pb2.StartTrainingRequest(task=task, method="head", options=adapt_pb2.TrainingOptions(pooling=pooling, serve_views=views)), timeout=30)
            final = list(training.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=900))[-1].job
            assert final.state == "succeeded", final.error
        tasks = ("imagenet", "surface", "guided", "plain", "guided-4", "guided-8")
        for task in tasks:  # warm every one
            median_ms(task, rounds=1)
        # Interleaved rounds, so drift in the machine's speed hits all alike.
        times = {task: [] for task in (*tasks, "map")}
        for _ in range(args.rounds):
            for task in tasks:
                times[task].append(median_ms(task, rounds=2))
            times["map"].append(median_ms("surface", with_map=True, rounds=2))
        names = {"imagenet": "imagenet (backbone + its classifier)", "surface": "anomaly", "map": "anomaly with map", "guided": "guided head", "plain": "plain head",
                 "guided-4": "guided head, 4 views", "guided-8": "guided head, 8 views"}
        result["classify_ms"] = {names[task]: statistics.median(values) for task, values in times.items()}
        result["added_ms"] = round(statistics.median(times["surface"]) - statistics.median(times["imagenet"]), 2)
        result["guided_added_ms"] = round(statistics.median(times["guided"]) - statistics.median(times["plain"]), 2)
        enrol = adapt_pb2_grpc.AdapterServiceStub(channel).EnrollGood
        server_ms, client_ms, added = [], [], []
        for img in parts[20:]:
            t = time.perf_counter()
            r = enrol(adapt_pb2.EnrollGoodRequest(task="surface", image=image_pb2.Image(encoded=png(img)), operator_id="bench"), timeout=60)
            client_ms.append((time.perf_counter() - t) * 1000)
            server_ms.append(r.elapsed_ms)
            added.append(r.patches_added)
        result["enrol_ms"] = {"server median": statistics.median(server_ms), "server max": max(server_ms), "client median": statistics.median(client_ms), "patches added (median)": statistics.median(added), "bank after": r.bank_patches}
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    # With EDGETL_BENCH_LOG_LEVEL=INFO the server logs where each enrolment's time went.
    result["enrol_log"] = [line.split("surface:", 1)[-1].strip() for line in stderr.splitlines() if "enrol" in line and "surface:" in line]
    print(json.dumps(result, indent=2))


def spinning(args) -> None:
    """Why the served score costs more than the score alone: the anomaly answer timed right after a
    backbone run and after the CPU has been idle, with ONNX Runtime's threads spinning between runs
    (edgetl's default), not spinning, and spinning only during a run (session.force_spinning_stop)."""
    import onnxruntime as ort

    from edgetl.anomaly.model import fit

    maps = Maps(args.store, args.threads)
    record = maps.session.record
    goods = [img for kind, img in make_set(args.surfaces[0], args.generators[0], 20, seed=0) if kind == "ok"]
    model, _ = fit([maps.of(img, 8) for img in goods], maps.names)
    tests = [maps.session.preprocess(img)[None] for _, img in make_set(args.surfaces[0], args.generators[0], 3, seed=TEST_SEED_OFFSET)]
    rows = []
    for allow, stop in (("1", "0"), ("0", "0"), ("1", "1")):
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", allow)
        options.add_session_config_entry("session.force_spinning_stop", stop)
        session = ort.InferenceSession(str(record.onnx_path), options, providers=["CPUExecutionProvider"])
        after_run, after_idle, run = [], [], []
        for _ in range(args.rounds):
            for x in tests:
                time.sleep(0.05)
                t = time.perf_counter()
                out = dict(zip(maps.names, session.run(list(maps.names), {record.manifest["input"]["name"]: x})))
                t1 = time.perf_counter()
                model.answer({k: v[0] for k, v in out.items()})
                t2 = time.perf_counter()
                time.sleep(0.05)
                model.answer({k: v[0] for k, v in out.items()})
                after_idle.append((time.perf_counter() - t2 - 0.05) * 1000)
                run.append((t1 - t) * 1000)
                after_run.append((t2 - t1) * 1000)
        rows.append((f"allow_spinning={allow}, force_spinning_stop={stop}", statistics.median(run), statistics.median(after_run), statistics.median(after_idle)))
        del session
    print(f"machine: {machine_line()}; {args.surfaces[0]}/{args.generators[0]}, {len(tests)} parts x {args.rounds} rounds\n")
    print("| ONNX Runtime threads | backbone run ms | answer right after the run ms | answer after 50 ms idle ms |")
    print("|---|---|---|---|")
    for name, r, a, i in rows:
        print(f"| {name} | {r:.1f} | {a:.1f} | {i:.1f} |")


def machine_line() -> str:
    from benchmarks.serve_overhead import machine

    return machine()


def report(args) -> None:
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["generator"] in args.generators and r["surface"] in args.surfaces and r["seed"] in args.seeds and (not args.variants or r["variant"] in args.variants)]
    groups = defaultdict(list)
    for r in rows:
        groups[(r["variant"], r["goods"])].append(r)
    print(f"generators: {', '.join(args.generators)}; surfaces: {', '.join(sorted({r['surface'] for r in rows}))}; seeds: {', '.join(map(str, sorted({r['seed'] for r in rows})))}\n")
    print("| variant | good images | mean image AUROC | " + " | ".join(DEFECTS) + " | worst surface | false alarms (test goods) | miss rate | bank patches | fit s | score ms |")
    print("|---|---|---|" + "---|" * len(DEFECTS) + "---|---|---|---|---|---|")
    for (variant, n), cells in sorted(groups.items()):
        per_kind = {k: statistics.mean(c["auroc"][k] for c in cells) for k in DEFECTS}
        by_surface = defaultdict(list)
        for c in cells:
            by_surface[c["surface"]].append(statistics.mean(c["auroc"].values()))
        worst = min(by_surface.items(), key=lambda kv: statistics.mean(kv[1]))
        far = [c["false_alarm_rate"] for c in cells if c["false_alarm_rate"] is not None]
        miss = [statistics.mean(c["miss_rate"].values()) for c in cells if c["miss_rate"]]
        print(
            f"| {variant} | {n} | {statistics.mean(per_kind.values()):.3f} | " + " | ".join(f"{v:.3f}" for v in per_kind.values())
            + f" | {worst[0]} {statistics.mean(worst[1]):.3f} | "
            + (f"{statistics.mean(far):.3f} | {statistics.mean(miss):.3f} | " if far else "– | – | ")
            + f"{statistics.median(c['bank_patches'] for c in cells):.0f} | {statistics.median(c['fit_s'] for c in cells):.2f} | {statistics.median(c['score_ms_median'] for c in cells):.1f} |"
        )
    with_pixels = {key: cells for key, cells in groups.items() if all("pixel_auroc" in c for c in cells)}
    if with_pixels:
        print("\npixel AUROC (the map resized to the image, defect pixels against the rest; defect masks from the generators):\n")
        print("| variant | good images | mean pixel AUROC | " + " | ".join(DEFECTS) + " |")
        print("|---|---|---|" + "---|" * len(DEFECTS))
        for (variant, n), cells in sorted(with_pixels.items()):
            per_kind = {k: statistics.mean(c["pixel_auroc"][k] for c in cells) for k in DEFECTS}
            print(f"| {variant} | {n} | {statistics.mean(per_kind.values()):.3f} | " + " | ".join(f"{v:.3f}" for v in per_kind.values()) + " |")
    with_tta = {key: cells for key, cells in groups.items() if all("tta" in c for c in cells)}
    if with_tta:
        print("\nanswered from several views (run --tta N: image scores averaged over each part's views, the threshold from leave-one-out scores averaged the same way), against one view in the same run:\n")
        print("| variant | good images | views | mean image AUROC | one view | false alarms (test goods) | one view |")
        print("|---|---|---|---|---|---|---|")
        from edgetl.anomaly.threshold import calibrate

        for (variant, n), cells in sorted(with_tta.items()):
            far = [np.mean(np.array(c["tta"]["scores"]["ok"]) > calibrate(np.array(c["tta"]["loo"])).threshold) for c in cells]
            print(
                f"| {variant} | {n} | {cells[0]['tta']['views']} | {statistics.mean(statistics.mean(c['tta']['auroc'].values()) for c in cells):.3f} "
                f"| {statistics.mean(statistics.mean(c['auroc'].values()) for c in cells):.3f} | {statistics.mean(far):.3f} | {statistics.mean(c['false_alarm_rate'] for c in cells):.3f} |"
            )
    print("\nper surface, mean image AUROC over defect kinds and generators:\n")
    surfaces = sorted({r["surface"] for r in rows}, key=list(SURFACES).index)
    print("| variant | good images | " + " | ".join(surfaces) + " |")
    print("|---|---|" + "---|" * len(surfaces))
    for (variant, n), cells in sorted(groups.items()):
        cols = []
        for s in surfaces:
            vals = [statistics.mean(c["auroc"].values()) for c in cells if c["surface"] == s]
            cols.append(f"{statistics.mean(vals):.3f}" if vals else "–")
        print(f"| {variant} | {n} | " + " | ".join(cols) + " |")


def _key(row: dict) -> tuple:
    return (row["surface"], row["generator"], row["goods"], row["seed"], row["variant"])


def _option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "report", "figure", "serve", "spinning"])
    parser.add_argument("--generators", nargs="+", default=list(HELD_OUT), help=f"tuning: {TUNING}; held out: {HELD_OUT}")
    parser.add_argument("--surfaces", nargs="+", default=list(SURFACES))
    parser.add_argument("--goods", type=int, nargs="+", default=[1, 5, 10, 20, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="run: the draws to run; report: the draws to pool (default 0)")
    parser.add_argument("--variant", default="default")
    parser.add_argument("--variants", nargs="*", default=[], help="report: only these variants")
    parser.add_argument("--option", action="append", default=[], help="a fit option, e.g. max_patches=8192 or views=1")
    parser.add_argument("--tta", type=int, default=1, help="run: also score each test part averaged over its first N views (2, 4 or 8)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--store", type=Path, default=ROOT / "edgetl-data" / "store")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "anomaly.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "anomaly-heatmap.jpg", help="figure: where the picture goes")
    parser.add_argument("--enrol", type=int, default=10, help="serve: good parts enrolled online after training")
    parser.add_argument("--rounds", type=int, default=5, help="serve: interleaved rounds of classify timing")
    args = parser.parse_args()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    {"run": run_cells, "report": report, "figure": figure, "serve": serve, "spinning": spinning}[args.action](args)


if __name__ == "__main__":
    main()
