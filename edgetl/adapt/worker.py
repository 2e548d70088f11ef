"""The training process: `python -m edgetl.adapt.worker` < request JSON.

Spawned by the server's JobManager, never forked from it. Reads the task's
current labels (read-only), trains, writes the adapter into the job's temp
directory, evaluates it and the active adapter on the same validation split
through the serving code, and reports progress as JSON lines on stdout. The
last line is {"phase": "done", ...} or {"phase": "failed", "message": ...}.

Every label is used, and the gate's evidence stays honest. Each adapter has
two models:

- a **holdout** model (``holdout/``), trained on the training split only;
  it is the one evaluated on the validation split, and the gate compares
  it with the active version's holdout model on the current split. Neither
  has seen a validation image, since the split is fixed by image hash;
- the **served** model, trained on every label. A head is fitted again on
  all of them. LoRA continues from the holdout model's best epoch for
  ``refit_epochs`` epochs with the validation images added, rather than
  training twice (with ``refit_epochs`` 0, a LoRA model's guided head is
  still fitted again on every label). This is what a line gets from the
  labels its operators gave.
The server, not this process, turns the temp directory into a version, so a
job that crashes or is killed leaves nothing behind but a temp directory.

Threads are bounded (settings.train_threads) and the process runs niced, so
serving keeps its latency while a job runs. If the server dies, the job stops.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from edgetl.runtime.adapters import (
    HOLDOUT_DIR,  # where an adapter keeps its holdout model
)

log = logging.getLogger("edgetl.worker")



class Emitter:
    def __init__(self, stream):
        self.stream = stream
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        event = {**event, "elapsed_s": time.monotonic() - self.started}
        with self._lock:
            self.stream.write(json.dumps(event) + "\n")
            self.stream.flush()


def _watch_parent(parent: int) -> None:
    """Exit when the server that started us is gone (kill -9 included)."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(1)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="edgetl train: %(message)s", stream=sys.stderr)
    request = json.loads(sys.stdin.read())
    threading.Thread(target=_watch_parent, args=(request["parent_pid"],), daemon=True).start()
    emit = Emitter(sys.stdout)
    from edgetl.errors import EdgetlError

    try:
        result = run(request, emit)
    except EdgetlError as exc:
        emit({"phase": "failed", "message": str(exc)})
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the job, the traceback for the log
        log.exception("training failed")
        emit({"phase": "failed", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    emit({"phase": "done", **result})
    return 0


def run(request: dict, emit) -> dict:
    from edgetl.adapt.labels import LabelStore
    from edgetl.adapt.metrics import metrics
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.db import DB_FILE
    from edgetl.errors import InvalidInput, NotReady
    from edgetl.fsutil import sha256_file
    from edgetl.runtime.adapters import open_adapter, predict, validate, verify_files
    from edgetl.runtime.batcher import MicroBatcher
    from edgetl.runtime.preprocess import EncodedImage, decode
    from edgetl.runtime.session import BackboneSession
    from edgetl.runtime.store import ModelStore
    from edgetl.settings import Settings

    settings = Settings.from_dict(request["settings"])
    settings.intra_op_threads = settings.train_threads
    from edgetl.runtime.threads import limit_blas

    limit_blas(settings.train_threads)  # bank searches and head fits: the job's threads, no more
    settings.providers = ("cpu",) if request.get("cpu_only") else settings.providers
    try:
        os.nice(settings.train_nice)
    except OSError:
        pass
    data_dir = Path(settings.data_dir)
    task, method = request["task"], request["method"]
    class_names = list(request["class_names"])
    tmp = Path(request["tmp_dir"])
    tmp.mkdir(parents=True, exist_ok=True)
    emit({"phase": "start", "message": f"{method} adapter for task {task!r}"})

    labels = LabelStore(data_dir, data_dir / DB_FILE, readonly=True).current(task)
    if method == "anomaly":
        _check_good_labels(labels, class_names)
    else:
        _check_labels(labels, class_names)
    index = {name: i for i, name in enumerate(class_names)}
    registry = BackboneRegistry.from_settings(settings)
    backbone = registry.get(request["backbone"])
    store = ModelStore(data_dir / "store")
    record = store.find(backbone)
    if record is None:
        raise NotReady(f"backbone {backbone.name!r} has no export yet; start the server once to export it")
    session = BackboneSession(record, settings, store.trt_cache)
    base = {backbone.name: MicroBatcher(session, settings.max_batch)}

    emit({"phase": "features", "message": f"preprocessing {len(labels)} labelled images"})
    tensors = np.stack([session.preprocess(decode(EncodedImage(l.path.read_bytes()), settings.max_pixels)) for l in labels])
    y = np.array([index[l.class_name] for l in labels])
    is_val = np.array([l.split == "val" for l in labels])
    train_x, train_y, val_x, val_y = tensors[~is_val], y[~is_val], tensors[is_val], y[is_val]
    options = dict(request.get("options") or {})
    from edgetl.adapt.quantize import ANOMALY_PRECISION, check_precision

    # The server-wide default is for classifiers; an anomaly bank is matched in float.
    options["precision"] = check_precision(str(options.get("precision") or ("fp32" if method == "anomaly" else settings.precision)))
    if options["precision"] != "fp32" and method == "anomaly":
        raise InvalidInput(ANOMALY_PRECISION)

    build = lambda directory, chosen, opts: _build(  # noqa: E731 - one adapter of method `chosen` in `directory`
        directory, chosen, opts, backbone, session, base, record, labels, tensors, is_val, y, class_names, data_dir, task, emit
    )
    auto = None
    if method == "auto":
        method, options, auto = _auto(tmp, build, options, backbone, base, settings, store, val_x, val_y, is_val, class_names, emit)
    elif method in ("head", "lora", "anomaly"):
        options = build(tmp, method, options)
    else:
        raise InvalidInput(f"unknown method {method!r}; use 'head', 'lora', 'auto' or 'anomaly'")

    emit({"phase": "evaluate", "message": f"validation split: {len(val_y)} images"})
    probe_x = (val_x if len(val_x) else train_x)[:4]
    manifest = json.loads((tmp / "manifest.json").read_text())
    candidate = open_adapter(tmp, base, settings, store.trt_cache, verify=False)
    np.savez(tmp / "probe.npz", inputs=probe_x, probs=predict(candidate, probe_x))
    _drift_reference(tmp, candidate, manifest, labels, tensors, y, class_names, session, data_dir, emit)
    manifest["files"] = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    # The server's checks on this very directory, without loading the adapter a second time.
    verify_files(tmp, manifest)
    validate(candidate, tmp)

    # The gate's evidence: the holdout model, which never saw the validation images.
    holdout = open_adapter(tmp, base, settings, store.trt_cache, verify=False, holdout=True)
    predicted = predict(holdout, val_x).argmax(1)
    result = {"metrics": metrics(val_y, predicted, class_names), "options": options, "labels": manifest["labels"], "method": method}
    if options.get("int8"):
        # The same adapter in float, on the same images: the gate's check on quantization.
        from edgetl.adapt.gate import paired_comparison

        fp32 = {k: v for k, v in options["int8"]["fp32_metrics"].items() if k != "predicted"}
        fp32_predicted = np.asarray(options["int8"]["fp32_metrics"]["predicted"], int)
        result["fp32_metrics"], result["int8_paired"] = fp32, paired_comparison(val_y, fp32_predicted, predicted)
    if method == "anomaly":
        result["anomaly"] = _anomaly_evidence(holdout, manifest, predict(holdout, val_x)[:, 1], val_y, predict(holdout, tensors[y == 1])[:, 1] if (y == 1).any() else None)
    if auto:
        result["auto"] = auto
    active_path = request.get("active_path")
    if active_path:
        try:
            active = open_adapter(Path(active_path), base, settings, store.trt_cache, holdout=True)
            active_predicted = predict(active, val_x).argmax(1)
            result["active_metrics"] = metrics(val_y, active_predicted, class_names)
            known = len(active.manifest.get("class_names") or class_names)
            if known < len(class_names):
                result["known_classes"] = _known_class_comparison(val_y, predicted, active_predicted, class_names, known)
        except Exception as exc:  # noqa: BLE001 - an unloadable active adapter must not block a new one
            emit({"phase": "evaluate", "message": f"the active adapter could not be evaluated: {exc}"})
    if request.get("compare_scratch") and method != "anomaly":
        emit({"phase": "scratch", "message": "training the same network from random weights"})
        result["scratch_metrics"] = _scratch(backbone, method, session, train_x, train_y, val_x, val_y, class_names, options, emit)
    return result


def _build(directory, method, options, backbone, session, base, record, labels, tensors, is_val, y, class_names, data_dir, task, emit) -> dict:
    """Train a `method` adapter (holdout and served models) into `directory` and write its manifest; returns its options."""
    from edgetl.adapt.labels import snapshot
    from edgetl.runtime.views import check_serve_views

    directory.mkdir(parents=True, exist_ok=True)
    precision = options.get("precision", "fp32")
    serve_views = check_serve_views(options.get("serve_views") or 1, method)
    if method == "head":
        options = _train_head(directory, session, base[backbone.name], labels, tensors, is_val, y, class_names, options, data_dir, emit)
    elif method == "anomaly":
        options = _train_anomaly(directory, session, base[backbone.name], tensors, is_val, y, options, emit)
    else:
        # The linear probe's frozen features, from ONNX Runtime and the head's feature cache.
        from edgetl.adapt.features import cached_features
        from edgetl.backbones.spec import POOLED

        names = (POOLED, *backbone.spec.feature_maps)  # the TaskNet's (trainer_lora.build_tasknet)
        train_labels = [label for label, val in zip(labels, is_val) if not val]
        probe = cached_features(base[backbone.name], train_labels, tensors[~is_val], names, data_dir / "features" / record.export_id, emit)
        options = _train_lora(directory, backbone, session, tensors[~is_val], y[~is_val], tensors[is_val], y[is_val], class_names, options, emit, probe)
    options = {**options, "precision": precision, "serve_views": serve_views}
    manifest = {
        "task": task, "method": method, "backbone": backbone.name, "export_id": record.export_id,
        "class_names": class_names, "options": options, "labels": snapshot(labels), "files": {},
        # Read by the loader: the probe, the gate's evidence and serving all answer from these views.
        "serve_views": serve_views,
        **_onnx_section(directory, method, record, task),
        "holdout": {"trained_on": int((~is_val).sum()), **_onnx_section(directory / HOLDOUT_DIR, method, record, task)},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return options


def _auto(tmp, build, options, backbone, base, settings, store, val_x, val_y, is_val, class_names, emit) -> tuple[str, dict, dict]:
    """Head first; LoRA when the evidence and the time budget allow; the better one ends up in `tmp`."""
    import shutil

    from edgetl.adapt.auto import (
        DEFAULT_BUDGET_S,
        MIN_VAL,
        SATISFIED,
        choose,
        plan_lora,
        should_try_lora,
        time_lora_steps,
    )
    from edgetl.adapt.trainer_lora import DEFAULTS as LORA_DEFAULTS
    from edgetl.runtime.adapters import open_adapter, predict

    def holdout_accuracy(directory) -> float:
        model = open_adapter(directory, base, settings, store.trt_cache, verify=False, holdout=True)
        return float((predict(model, val_x).argmax(1) == val_y).mean()) if len(val_y) else 0.0

    budget = float(options.get("time_budget_s") or DEFAULT_BUDGET_S)
    lora_options = {**LORA_DEFAULTS, **{k: v for k, v in options.items() if k in LORA_DEFAULTS and v is not None}}
    emit({"phase": "auto", "message": "auto: training a head first"})
    head_dir = tmp / ".auto-head"
    head_options = build(head_dir, "head", options)
    head_acc = holdout_accuracy(head_dir)
    estimate, plan = None, None
    if head_acc < SATISFIED and len(val_y) >= MIN_VAL:
        emit({"phase": "auto", "message": f"auto: head validation accuracy {head_acc:.3f}; timing LoRA steps on this machine"})
        # LoRA fits a guided head on its tuned maps when the head is guided (the same good class and options decide).
        guided = head_options.get("pooling") == "guided" and options.get("precision") != "int8"
        guided_views = int(head_options.get("views") or 0) if guided else 0
        timing = time_lora_steps(backbone, len(class_names), lora_options)
        if timing is not None:
            plan = plan_lora(timing, lora_options, options.get("refit_epochs") is not None, int((~is_val).sum()), len(is_val), guided_views, budget)
            estimate = plan.estimate_s
    decision = should_try_lora(head_acc, len(val_y), estimate, budget)
    summary = {"head_val_accuracy": head_acc, "lora_estimate_s": estimate, "time_budget_s": budget, "tried_lora": decision.train_lora}
    chosen, chosen_dir, chosen_options, why = "head", head_dir, head_options, decision.reason
    if decision.train_lora:
        lora_request = dict(options)
        if plan.note:  # over the budget with the refit, inside it without
            summary["lora_refit_epochs"] = lora_request["refit_epochs"] = plan.refit_epochs
        emit({"phase": "auto", "message": f"auto: {decision.reason}{'; ' + plan.note if plan.note else ''}; training LoRA"})
        lora_dir = tmp / ".auto-lora"
        lora_built = build(lora_dir, "lora", lora_request)
        lora_acc = holdout_accuracy(lora_dir)
        summary["lora_val_accuracy"] = lora_acc
        chosen, why = choose(head_acc, lora_acc, len(val_y), lora_guided=lora_built.get("pooling") == "guided")
        if chosen == "lora":
            chosen_dir, chosen_options = lora_dir, lora_built
    summary.update(chosen=chosen, reason=why)
    emit({"phase": "auto", "message": f"auto chose {chosen}: {why}"})
    for item in chosen_dir.iterdir():  # the chosen adapter becomes the job's; the other is dropped
        shutil.move(str(item), str(tmp / item.name))
    for leftover in (tmp / ".auto-head", tmp / ".auto-lora"):
        shutil.rmtree(leftover, ignore_errors=True)
    chosen_options = {**chosen_options, "auto": summary}
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest["options"] = chosen_options
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return chosen, chosen_options, summary


def _drift_reference(tmp, candidate, manifest, labels, tensors, y, class_names, session, data_dir, emit) -> None:
    """drift.npz: how every labelled image looks to the served model (edgetl.monitor.reference)."""
    from edgetl.adapt.features import cached_features, cached_maps
    from edgetl.monitor.reference import FILE, fit_reference
    from edgetl.runtime.guided import GuidedHead
    from edgetl.runtime.heads import EMBEDDING, probabilities_and_embedding

    emit({"phase": "reference", "message": f"drift reference from {len(labels)} labelled images"})
    if manifest["method"] == "head":
        # The head's standardised features of each image as served (no flips), from the cache.
        names = candidate.head.inputs
        # An INT8 head runs its own quantized backbone: the float backbone's cache does not hold its features.
        cache = None if manifest.get("onnx") else data_dir / "features" / session.record.export_id
        if isinstance(candidate.head, GuidedHead):
            maps = cached_maps(candidate.batcher, labels, tensors, names, cache, emit)
            pooled = np.stack([candidate.head.pool({k: v[None].astype(np.float32) for k, v in m.items()})[0] for m in maps])
        else:
            pooled = cached_features(candidate.batcher, labels, tensors, names, cache, emit)
        z = (pooled - candidate.head.mean) * candidate.head.inv_std
    elif EMBEDDING in candidate.outputs:
        # What serving hands the monitor (engine: `probabilities_and_embedding`): a LoRA model's own
        # embedding, or its guided head's standardised descriptor. Queued 32 images at a time so
        # the batcher runs them in batches (one at a time took twice as long).
        rows = []
        for start in range(0, len(tensors), 32):
            results = candidate.batcher.run_many(list(tensors[start : start + 32]), candidate.outputs)
            features = {name: np.stack([r.features[name] for r in results]) for name in candidate.outputs}
            rows.append(probabilities_and_embedding(candidate.head, features)[1])
        z = np.concatenate(rows)
    else:
        return
    if len(z) < 4:
        return
    np.savez(tmp / FILE, **fit_reference(z, y, len(class_names)))


def _known_class_comparison(val_y, predicted, active_predicted, class_names, known: int) -> dict:
    """Both adapters on the validation images of the classes the active one knows.

    A task that gained a class (a new defect type) is trained with it; the
    active adapter, trained before, can never predict it, so on the whole
    split it loses those images by construction. The gate also compares the
    two on the old classes alone, so the new class is not bought by getting
    worse at the ones the line already relied on.
    """
    mask = val_y < known
    n = int(mask.sum())
    return {
        "classes": list(class_names[:known]),
        "new_classes": list(class_names[known:]),
        "n": n,
        "accuracy": float((predicted[mask] == val_y[mask]).mean()) if n else 0.0,
        "active_accuracy": float((active_predicted[mask] == val_y[mask]).mean()) if n else 0.0,
    }


def _check_good_labels(labels, class_names) -> None:
    """An anomaly task trains from good images alone; defect labels are optional evidence."""
    from edgetl.anomaly.model import MIN_GOOD
    from edgetl.errors import InvalidInput

    good = [l for l in labels if l.class_name == class_names[0]]
    if len(good) < MIN_GOOD + 2:
        raise InvalidInput(
            f"an anomaly task needs good images to learn from: {len(good)} labelled {class_names[0]!r}, at least {MIN_GOOD + 2} needed "
            f"(10 or more recommended; edgetl label add --task T --class {class_names[0]} FILES)"
        )
    if not any(l.split == "val" for l in good):
        raise InvalidInput(f"none of the {len(good)} good images falls in the validation split (~20% by image hash); label more good images")


def _check_labels(labels, class_names) -> None:
    from edgetl.errors import InvalidInput

    per_class = {name: 0 for name in class_names}
    for label in labels:
        per_class[label.class_name] = per_class.get(label.class_name, 0) + 1
    short = {name: n for name, n in per_class.items() if n < 2}
    if short:
        raise InvalidInput(f"every class needs at least 2 labels to train; short: {short} (edgetl label add / import)")
    if not any(l.split == "val" for l in labels):
        raise InvalidInput(f"none of the {len(labels)} labelled images falls in the validation split (~20% by image hash); label more images")


def _train_head(tmp, session, batcher, labels, tensors, is_val, y, class_names, options, data_dir, emit) -> dict:
    """The holdout head on the training split, then the served head on every label.

    Guided pooling (edgetl.runtime.guided) when the task has a good class
    with enough training images, else the plain head's global pooling
    (`_head_pooling` says which and why; the job's options record it).
    """
    from edgetl.adapt.features import VIEWS, cached_features, cached_maps
    from edgetl.adapt.trainer_guided import fit_guided
    from edgetl.adapt.trainer_head import DEFAULTS, train_head
    from edgetl.anomaly.model import bank_maps
    from edgetl.backbones.spec import POOLED
    from edgetl.errors import InvalidInput
    from edgetl.runtime.guided import head_from_arrays

    cache = data_dir / "features" / session.record.export_id
    resolved = {**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS and v is not None}}
    views = int(resolved["views"])
    if not 1 <= views <= len(VIEWS):
        raise InvalidInput(f"head option views must be 1-{len(VIEWS)}, got {views}")
    train = ~is_val
    pooling, good, why = _head_pooling(class_names, y, train, options)
    resolved = {**resolved, "pooling": pooling, "pooling_reason": why}
    if good is not None:
        resolved["good_class"] = class_names[good]
    if pooling == "guided":
        names = bank_maps(session.record.manifest)
        guided_options = {**resolved, "max_patches": options.get("max_patches"), "seed": options.get("seed")}

        def extract(source, cache_dir):  # each labelled image's maps, in each view
            return [cached_maps(source, labels, tensors, names, cache_dir, emit, view) for view in range(views)]

        def fit(data, rows, progress=lambda e: None) -> dict:
            return fit_guided(data, y, rows, good, len(class_names), guided_options, progress)

        def probabilities(head, data, rows) -> np.ndarray:
            return head_from_arrays(head)({name: np.stack([data[0][i][name] for i in np.flatnonzero(rows)]).astype(np.float32) for name in names})
    else:
        names = (POOLED, *session.record.manifest["spec"]["feature_maps"])

        def extract(source, cache_dir):  # [V, N, D]: each labelled image's pooled features, in each view
            return np.stack([cached_features(source, labels, tensors, names, cache_dir, emit, view) for view in range(views)])

        def fit(data, rows, progress=lambda e: None) -> dict:
            return train_head(data[:, rows].reshape(-1, data.shape[2]), np.tile(y[rows], views), len(class_names), resolved, progress)

        def probabilities(head, data, rows) -> np.ndarray:
            model = head_from_arrays(head, names)
            return model.classify((data[0, rows] - model.mean) * model.inv_std)

    emit({"phase": "features", "message": f"{pooling} pooling ({why}); {len(labels)} images in {views} view(s)"})
    data = extract(batcher, cache)
    (tmp / HOLDOUT_DIR).mkdir(parents=True, exist_ok=True)
    holdout = fit(data, train, emit)
    if options.get("precision") == "int8":
        # The float holdout head above is the yardstick; the adapter itself is
        # an INT8 backbone of its own with heads fitted on *its* features.
        from edgetl.adapt.metrics import metrics

        predicted = probabilities(holdout, data, ~train).argmax(1)
        fp32_metrics = {**metrics(y[~train], predicted, class_names), "predicted": predicted.tolist()}
        int8 = _int8_backbone(tmp, session, tensors[train], emit)
        data = extract(_own_batcher(tmp, session, int8), None)
        holdout = fit(data, train, emit)
        resolved = {**resolved, "int8": {**int8, "fp32_metrics": fp32_metrics}}
    np.savez(tmp / HOLDOUT_DIR / "head.npz", **{"inputs": np.array(names), **holdout})
    emit({"phase": "refit", "message": f"fitting the served head on all {len(y)} labels"})
    np.savez(tmp / "head.npz", **{"inputs": np.array(names), **fit(data, np.ones_like(train))})
    return resolved


def _head_pooling(class_names, y, train, options) -> tuple[str, int | None, str]:
    """("guided" or "global", the good class's index or None, why), from the `pooling` option and the labels."""
    from edgetl.adapt.trainer_guided import MIN_GOOD, check_pooling, good_class
    from edgetl.errors import InvalidInput

    wanted = check_pooling(str(options.get("pooling") or "auto"))
    if wanted == "global":
        return "global", None, "asked for"
    good = good_class(class_names, options)
    if good is None:
        if wanted == "guided":
            raise InvalidInput(f"guided pooling needs a good class: name it with good_class (classes: {', '.join(class_names)})")
        return "global", None, "no class named like a good part (ok, good, pass…); name one with good_class for guided pooling"
    n_good = int((train & (y == good)).sum())
    if n_good < MIN_GOOD:
        if wanted == "guided":
            raise InvalidInput(f"guided pooling needs at least {MIN_GOOD} {class_names[good]!r} images in the training split, got {n_good}; label more")
        return "global", good, f"only {n_good} {class_names[good]!r} image(s) in the training split; guided pooling needs {MIN_GOOD}"
    return "guided", good, f"looks where parts differ from the {n_good} {class_names[good]!r} training images" if wanted == "auto" else "asked for"


def _int8_backbone(tmp: Path, session, calibration: np.ndarray, emit) -> dict:
    """The task's INT8 copy of its float backbone, for the served and the holdout head alike.

    Calibrated on the training split only, so the validation images the gate
    scores were never seen, not even as activation ranges.
    """
    import shutil

    from edgetl.adapt.quantize import calibration_images, quantize_int8

    images = calibration_images(calibration)
    emit({"phase": "quantize", "message": f"INT8 backbone, calibrated on {len(images)} of the task's training images"})
    facts = quantize_int8(session.record.onnx_path, tmp / "model.onnx", images, session.input_name)
    shutil.copyfile(tmp / "model.onnx", tmp / HOLDOUT_DIR / "model.onnx")
    section = {"outputs": session.record.output_shapes, "int8": facts}
    for directory in (tmp, tmp / HOLDOUT_DIR):
        (directory / "export.json").write_text(json.dumps(section, indent=2))
    return facts


def _own_batcher(tmp: Path, session, int8: dict):
    """A MicroBatcher on the INT8 model in `tmp`, loaded as serving will load it."""
    from edgetl.fsutil import sha256_file
    from edgetl.runtime.batcher import MicroBatcher
    from edgetl.runtime.session import BackboneSession
    from edgetl.runtime.store import ExportRecord

    manifest = {**session.record.manifest, "onnx_sha256": sha256_file(tmp / "model.onnx"), "int8": int8}
    own = BackboneSession(ExportRecord(f"{session.record.export_id}-int8", tmp, manifest), session.settings, session.trt_cache_root)
    return MicroBatcher(own, 1)


def _train_anomaly(tmp, session, batcher, tensors, is_val, y, options, emit) -> dict:
    """The holdout bank from the training split's good images, the served bank from all of them.

    Only `good` labels (class 0) build a bank; `anomaly` labels are evidence
    (AUROC), never enrolled.
    """
    from edgetl.adapt.features import VIEWS
    from edgetl.anomaly.model import DEFAULTS, MIN_GOOD, bank_maps, fit
    from edgetl.errors import InvalidInput

    names = bank_maps(session.record.manifest)
    resolved = {**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS and v is not None}}
    views = int(resolved["views"])
    if not 1 <= views <= len(VIEWS):
        raise InvalidInput(f"anomaly option views must be 1-{len(VIEWS)}, got {views}")
    good = np.flatnonzero(y == 0)
    emit({"phase": "features", "message": f"feature maps of {len(good)} good images in {views} view(s)"})
    maps = {}
    for done, i in enumerate(good, 1):
        maps[int(i)] = [batcher.run(np.ascontiguousarray(VIEWS[v](tensors[i])), names).features for v in range(views)]
        if done % 10 == 0 or done == len(good):
            emit({"phase": "features", "epoch": done, "epochs": len(good), "message": f"good image {done}/{len(good)}"})
    train_good = [int(i) for i in good if not is_val[i]]
    if len(train_good) < MIN_GOOD:
        raise InvalidInput(f"only {len(train_good)} good image(s) fall in the training split; label at least {MIN_GOOD + 2} good images")
    try:
        emit({"phase": "train", "message": f"holdout bank from the {len(train_good)} good images of the training split"})
        holdout, _ = fit([maps[i] for i in train_good], names, resolved)
        (tmp / HOLDOUT_DIR).mkdir(parents=True, exist_ok=True)
        holdout.save(tmp / HOLDOUT_DIR / "bank.npz")
        emit({"phase": "refit", "message": f"served bank from all {len(good)} good images"})
        served, summary = fit([maps[int(i)] for i in good], names, resolved)
    except ValueError as exc:
        raise InvalidInput(f"anomaly training: {exc}") from exc
    served.save(tmp / "bank.npz")
    summary.pop("leave_one_out_scores")
    return {**resolved, "maps": list(names), "bank": summary}


def _anomaly_evidence(holdout, manifest, val_scores, val_y, defect_scores) -> dict:
    """What the job reports for an anomaly adapter: the calibration, and with labelled defects the AUROC.

    The holdout bank never saw the validation split's good images nor any
    defect (defects are never enrolled), so all of them are fair evidence.
    """
    from edgetl.anomaly.threshold import auroc

    calibration = manifest["options"]["bank"]["calibration"]
    evidence = {"calibration": calibration, "bank_patches": manifest["options"]["bank"]["bank_patches"]}
    good_val = val_scores[val_y == 0]
    evidence["validation_good"] = len(good_val)
    if defect_scores is not None and len(good_val):
        # Probabilities rank like scores (a monotone map), so the AUROC is the same.
        evidence["auroc"] = auroc(good_val, defect_scores)
        evidence["defects"] = len(defect_scores)
    n = calibration["n"]
    evidence["message"] = (
        f"threshold for a {calibration['false_alarm_rate']:.1%} false-alarm rate, from {n} good images scored against the others; "
        f"distribution-free bound {calibration['guaranteed_false_alarm_rate']:.1%}"
        + ("; label at least 10 good images for a tighter one" if n < 10 else "")
        + (f"; AUROC {evidence['auroc']:.3f} on {evidence['defects']} labelled defects" if "auroc" in evidence else "")
    )
    return evidence


def _train_lora(tmp, backbone, session, train_x, train_y, val_x, val_y, class_names, options, emit, probe_features=None) -> dict:
    """The holdout LoRA model on the training split, then the served one, from every label.

    With a good class (as the head decides it: `_head_pooling`), each model
    answers through a guided head on its own tuned maps (`_tuned_guided_heads`),
    not its own classifier. The served model is the holdout model after
    `refit_epochs` more epochs with every label; with `refit_epochs` 0 the
    holdout model serves, and its guided head is fitted again on every label
    (the head job's way) on maps computed once.
    """
    import shutil

    import torch

    from edgetl.adapt.trainer_lora import (
        DEFAULTS,
        build_tasknet,
        continue_tasknet,
        merged_for_export,
        train_tasknet,
    )
    from edgetl.anomaly.model import bank_maps
    from edgetl.backbones.export import export_module
    from edgetl.runtime.heads import EMBEDDING

    torch.set_num_threads(max(1, int(os.environ.get("EDGETL_TRAIN_THREADS", "1"))))
    resolved = {**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS and v is not None}}
    int8 = options.get("precision") == "int8"
    x_all, y_all = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    is_train = np.arange(len(y_all)) < len(train_y)
    pooling, good, why = _head_pooling(class_names, y_all, is_train, options)
    if int8 and pooling == "guided":
        if str(options.get("pooling") or "auto") == "guided":
            from edgetl.errors import InvalidInput

            raise InvalidInput("a LoRA adapter with precision int8 answers from its own classifier; guided pooling is for float LoRA (pooling auto or global)")
        pooling, why = "global", "precision int8: the quantized model answers from its own classifier"
    guided = pooling == "guided"
    names = bank_maps(session.record.manifest) if guided else ()
    refit = int(resolved["refit_epochs"]) if len(val_x) else 0
    net, peft_model = build_tasknet(backbone, len(class_names), resolved)
    summary = train_tasknet(net, train_x, train_y, val_x, val_y, len(class_names), resolved, False, emit, probe_features=probe_features)
    emit({"phase": "export", "message": f"best epoch {summary['best_epoch']} (validation accuracy {summary['val_accuracy']:.3f}); exporting the holdout model"})
    holdout = tmp / HOLDOUT_DIR
    holdout.mkdir(parents=True, exist_ok=True)
    # Without a refit the holdout model is also the served one: one export, with the served outputs.
    facts = export_module(merged_for_export(net), backbone.spec, ("logits", *(() if refit else (EMBEDDING,)), *names), holdout / "model.onnx")
    if int8:
        fp32_metrics = _onnx_metrics(holdout / "model.onnx", val_x, val_y, class_names)
        facts["int8"] = _quantize_in_place(holdout / "model.onnx", train_x, emit)  # the training split only, as the gate requires
    (holdout / "export.json").write_text(json.dumps(facts, indent=2))
    if refit:
        if guided:
            _tuned_guided_heads(holdout / "model.onnx", train_x, train_y, {holdout: np.ones(len(train_y), bool)}, names, good, class_names, options, emit)
        emit({"phase": "refit", "message": f"{refit} more epoch(s) with the {len(val_y)} validation images added: the served model learns from every label"})
        continue_tasknet(net, x_all, y_all, len(class_names), resolved, refit, emit)
        emit({"phase": "export", "message": "merging and exporting the served model"})
        facts = export_module(merged_for_export(net), backbone.spec, ("logits", EMBEDDING, *names), tmp / "model.onnx")
        if int8:
            facts["int8"] = _quantize_in_place(tmp / "model.onnx", x_all, emit)
        (tmp / "export.json").write_text(json.dumps(facts, indent=2))
    else:
        for name in ("model.onnx", "export.json"):
            shutil.copyfile(holdout / name, tmp / name)
    if guided:
        # The served head learns every label; without a refit the holdout head reads the same
        # model's maps (its training split's rows), so they are computed once for both.
        fits = {tmp: np.ones(len(y_all), bool), **({} if refit else {holdout: is_train})}
        _tuned_guided_heads(tmp / "model.onnx", x_all, y_all, fits, names, good, class_names, options, emit)
    if peft_model is not None:
        peft_model.save_pretrained(str(tmp / "peft"))  # adapter_config.json + adapter_model.safetensors
    done = {
        **resolved, "best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"], "refit_epochs": refit,
        "pooling": pooling, "pooling_reason": why, **({"good_class": class_names[good]} if good is not None else {}),
    }
    return {**done, "int8": {**facts["int8"], "fp32_metrics": fp32_metrics}} if int8 else done


def _tuned_guided_heads(model: Path, x, y, fits: dict[Path, np.ndarray], names, good: int, class_names, options, emit) -> None:
    """head.npz in each directory of `fits`: a guided head (edgetl.runtime.guided) fitted on
    the images its rows pick, on the maps of x from the LoRA model at `model`.

    The head job's guided head reads the frozen ImageNet maps; LoRA tunes
    the maps to the task's defects but pools the whole image. This is both:
    the good bank and the pooling where a part is unlike it, on maps tuned
    to the defects (BENCHMARKS.md, "What was tried"). Fitted as the head job
    fits it, in its views, with its options, on the maps the exported model
    gives (ONNX Runtime: what serving will see, and 3-4x faster here than
    the network in PyTorch); each image's maps are computed once for all fits.
    """
    from edgetl.adapt.trainer_guided import fit_guided
    from edgetl.adapt.trainer_head import DEFAULTS as HEAD_DEFAULTS

    # The head's own options only: LoRA's epochs and learning rate are not the head's.
    head_options = {**HEAD_DEFAULTS, **{k: options[k] for k in ("weight_decay", "max_patches", "seed", "views") if options.get(k) is not None}}
    views = int(head_options["views"])
    emit({"phase": "features", "message": f"guided head on the tuned maps: {len(x)} images in {views} view(s)"})
    maps = _onnx_maps(model, x, names, views, emit)
    for directory, rows in fits.items():
        head = fit_guided(maps, y, rows, good, len(class_names), head_options, emit)
        np.savez(directory / "head.npz", **{"inputs": np.array(names), **head})


def _onnx_maps(path: Path, x: np.ndarray, names, views: int, emit, batch: int = 16) -> list[list[dict[str, np.ndarray]]]:
    """maps[v][i]: image i's maps `names` ([C, h, w] each) from the model at `path`, in the head job's view v.

    Batched through ONNX Runtime directly (not `cached_maps`' one image per run through a
    MicroBatcher, nor its cache: a new model's maps are never asked for again); progress as it.
    """
    import time

    import onnxruntime as ort

    from edgetl.adapt.features import VIEWS
    from edgetl.backbones.export import INPUT_NAME

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(os.environ.get("EDGETL_TRAIN_THREADS", "1")))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = []
    started = time.monotonic()
    for v in range(views):
        maps = []
        for start in range(0, len(x), batch):
            xb = np.stack([np.ascontiguousarray(VIEWS[v](xi)) for xi in x[start : start + batch]]).astype(np.float32)
            got = session.run(list(names), {INPUT_NAME: xb})
            maps.extend({name: got[j][i] for j, name in enumerate(names)} for i in range(len(xb)))
        out.append(maps)
        elapsed = time.monotonic() - started
        emit({"phase": "features", "epoch": v + 1, "epochs": views, "elapsed_s": elapsed, "eta_s": elapsed / (v + 1) * (views - v - 1), "message": f"tuned feature maps, view {v + 1} of {views}: {len(x)} images"})
    return out


def _quantize_in_place(path: Path, calibration: np.ndarray, emit) -> dict:
    """Replace the float model at `path` by its INT8 copy, calibrated on `calibration` images."""
    from edgetl.adapt.quantize import calibration_images, quantize_int8
    from edgetl.backbones.export import INPUT_NAME

    images = calibration_images(calibration)
    emit({"phase": "quantize", "message": f"INT8 {path.parent.name if path.parent.name == HOLDOUT_DIR else 'served'} model, calibrated on {len(images)} images"})
    float_copy = path.with_name("float.onnx")
    os.replace(path, float_copy)
    try:
        return quantize_int8(float_copy, path, images, INPUT_NAME)
    finally:
        float_copy.unlink(missing_ok=True)


def _onnx_metrics(path: Path, val_x: np.ndarray, val_y: np.ndarray, class_names) -> dict:
    """A float model's metrics on the validation split, with its predictions (the yardstick its INT8 copy is held to)."""
    import onnxruntime as ort

    from edgetl.adapt.metrics import metrics
    from edgetl.backbones.export import INPUT_NAME

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = [session.run(["logits"], {INPUT_NAME: val_x[i : i + 16]})[0] for i in range(0, len(val_x), 16)]
    predicted = np.concatenate(logits).argmax(1) if logits else np.zeros(0, int)
    return {**metrics(val_y, predicted, class_names), "predicted": predicted.tolist()}


def _onnx_section(tmp: Path, method: str, record, task: str) -> dict:
    """For adapters with a model file of their own (LoRA, an INT8 head): the fields BackboneSession reads, as in a backbone export's manifest."""
    from edgetl.fsutil import sha256_file

    if not (tmp / "export.json").is_file():  # a float head or a bank: it runs on the task's shared backbone
        return {}
    facts = json.loads((tmp / "export.json").read_text())
    base = record.manifest
    name = f"{task}-{method}" + ("-int8" if "int8" in facts else "")
    return {"onnx": {"backbone": name, "spec": base["spec"], "input": base["input"], "outputs": facts["outputs"], "onnx_sha256": sha256_file(tmp / "model.onnx"), **facts}}


def _scratch(backbone, method, session, train_x, train_y, val_x, val_y, class_names, options, emit) -> dict:
    """The same method from random weights: the baseline that shows what transfer buys."""
    import torch

    from edgetl.adapt.metrics import metrics
    from edgetl.adapt.trainer_head import DEFAULTS as HEAD_DEFAULTS
    from edgetl.adapt.trainer_head import train_head
    from edgetl.adapt.trainer_lora import (
        SCRATCH_DEFAULTS,
        build_tasknet,
        nhwc,
        torch_pool,
        train_tasknet,
    )
    from edgetl.backbones.spec import POOLED

    if method == "head":
        net, _ = build_tasknet(backbone, len(class_names), SCRATCH_DEFAULTS, scratch=True)  # random, frozen
        names = (POOLED, *backbone.spec.feature_maps)
        with torch.no_grad():
            feats = lambda x: torch.cat([torch_pool(net.backbone.eval()(nhwc(torch.from_numpy(x[i : i + 16]))), names) for i in range(0, len(x), 16)]).numpy()
            ftrain, fval = feats(train_x), feats(val_x)
        head = train_head(ftrain, train_y, len(class_names), HEAD_DEFAULTS)
        logits = ((fval - head["mean"]) / head["std"]) @ head["weight"].T + head["bias"]
        return metrics(val_y, logits.argmax(1), class_names)
    resolved = {**SCRATCH_DEFAULTS, **{k: v for k, v in options.items() if k in ("epochs", "batch_size", "seed", "augment")}}
    net, _ = build_tasknet(backbone, len(class_names), resolved, scratch=True)
    train_tasknet(net, train_x, train_y, val_x, val_y, len(class_names), resolved, True, lambda e: emit({**e, "phase": "scratch"}))
    with torch.no_grad():
        logits = torch.cat([net(nhwc(torch.from_numpy(val_x[i : i + 32])))["logits"] for i in range(0, len(val_x), 32)])
    return metrics(val_y, logits.argmax(1).numpy(), class_names)


if __name__ == "__main__":
    sys.exit(main())
