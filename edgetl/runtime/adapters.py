"""Load a trained adapter for serving: verify, load, validate, warm up.

An adapter directory holds ``manifest.json`` and its artifacts:

- method ``head``: ``head.npz``, a LinearHead on the task's shared backbone
  (a GuidedHead when it also holds a bank of the task's good patches:
  edgetl.runtime.guided);
  with precision ``int8``, also ``model.onnx``, the backbone quantized to
  8 bits (edgetl.adapt.quantize), run as the task's own backbone session;
- method ``anomaly``: ``bank.npz``, a bank of good patches with its
  threshold (edgetl.anomaly.model), on the task's shared backbone;
- method ``lora``: ``model.onnx``, the backbone with the LoRA weights merged
  and the task's classifier on top (output ``logits``; 8-bit with precision
  ``int8``), run as the task's own backbone session, plus ``peft/`` (adapter_config.json +
  adapter_model.safetensors) for retraining and audit; when the task has a
  good class (since 2026-12-06), also ``head.npz``, a guided head on the
  tuned backbone's maps (which the model then also outputs): it answers,
  not the model's own classifier;
- both: ``probe.npz``, a few preprocessed inputs and the probabilities the
  training process computed for them with ONNX Runtime;
- ``drift.npz``: the drift reference (edgetl.monitor.reference), fitted
  on the served model's embeddings of every label; adapters from before
  drift monitoring have none;
- ``serve_views`` in the manifest (head and LoRA; 1 when absent): each image
  is answered from its first V views (edgetl.runtime.views), the head's
  probabilities averaged; the probe, the gate's evidence and serving alike;
- ``holdout/``: the same kind of model trained on the training split only
  (``head.npz`` or ``model.onnx``), which the evaluation gate compares. The
  served model learned from every label. Adapters from before there was a
  holdout model have none: their served model is their holdout model.

Loading checks every file against the manifest's sha256, then runs the
probe inputs through the loaded adapter and compares: a damaged, truncated
or mismatched adapter fails here, before it can serve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.anomaly.model import FILE as BANK_FILE
from edgetl.anomaly.model import AnomalyModel
from edgetl.errors import Damaged, ExportError, InvalidInput, NotReady
from edgetl.fsutil import sha256_file
from edgetl.monitor.reference import FILE as DRIFT_FILE
from edgetl.monitor.reference import DriftReference
from edgetl.runtime.batcher import MicroBatcher
from edgetl.runtime.guided import load_head
from edgetl.runtime.heads import EMBEDDING, Head, LogitsHead
from edgetl.runtime.session import BackboneSession
from edgetl.runtime.store import ExportRecord
from edgetl.runtime.views import check_serve_views, stack_views, views_of
from edgetl.settings import Settings

MANIFEST = "manifest.json"
HOLDOUT_DIR = "holdout"
PROBE = "probe.npz"
PROBE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LoadedAdapter:
    version: str
    head: Head
    batcher: MicroBatcher  # the backbone it runs on: shared (head) or its own (lora)
    manifest: dict
    drift: object | None = None  # its DriftReference, when it has one
    outputs: tuple[str, ...] = ()  # outputs to fetch beyond the head's inputs (a LoRA model's embedding)
    views: int = 1  # views each image is answered from, probabilities averaged (edgetl.runtime.views)


def read_manifest(path: Path) -> dict:
    try:
        return json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"adapter at {path}: unreadable manifest ({exc})") from exc


def verify_files(path: Path, manifest: dict) -> None:
    for name, expected in manifest["files"].items():
        file = Path(path) / name
        actual = sha256_file(file) if file.is_file() else "missing"
        if actual != expected:
            raise Damaged(f"adapter {manifest.get('version')} of task {manifest.get('task')!r}: {name} is {'missing' if actual == 'missing' else 'damaged (sha256 mismatch)'}")


def load_adapter(path: Path, base: dict[str, MicroBatcher], settings: Settings, trt_cache_root: Path) -> LoadedAdapter:
    """Load and validate the adapter at `path`. Raises, leaving nothing half-loaded."""
    adapter = open_adapter(path, base, settings, trt_cache_root)
    validate(adapter, Path(path))
    return adapter


def open_adapter(
    path: Path, base: dict[str, MicroBatcher], settings: Settings, trt_cache_root: Path, verify: bool = True, holdout: bool = False
) -> LoadedAdapter:
    """Load without the probe check (the training process uses this to make the probe).

    `holdout` loads the model trained without the validation split (the
    gate's evidence), where the adapter has one; otherwise the served model.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if verify:
        verify_files(path, manifest)
    if holdout and "holdout" in manifest:
        manifest = {**manifest, "onnx": manifest["holdout"].get("onnx"), "version": f"{manifest.get('version', 'candidate')}-holdout"}
        path = path / HOLDOUT_DIR
    method = manifest["method"]
    own_model = bool(manifest.get("onnx"))  # LoRA, or an INT8 head on its own quantized backbone
    if method in ("head", "anomaly") and not own_model:
        batcher = base.get(manifest["backbone"])
        if batcher is None:
            raise NotReady(f"backbone {manifest['backbone']!r} of adapter {manifest['version']} is not loaded")
        if batcher.session.record.export_id != manifest["export_id"]:
            raise ExportError(
                f"adapter {manifest['version']} was trained on backbone export {manifest['export_id']}, "
                f"but {batcher.session.record.export_id} is loaded; retrain it"
            )
        head: Head = _load_head(path / "head.npz", manifest) if method == "head" else _load_bank(path / BANK_FILE, manifest)
    elif method in ("head", "lora", "scratch") and own_model:
        record = ExportRecord(f"{manifest['task']}-v{manifest.get('version', 'candidate')}", path, manifest["onnx"])
        kind = method + (", int8" if "int8" in manifest["onnx"] else "")
        # Counted per task, not per version, so /metrics does not grow a series with every retraining.
        batcher = MicroBatcher(BackboneSession(record, settings, trt_cache_root), settings.max_batch, label=f"{manifest['task']} ({kind})")
        # A LoRA adapter with a head.npz answers through a guided head on its tuned maps (worker._tuned_guided_heads).
        head = _load_head(path / "head.npz", manifest) if method == "head" or (path / "head.npz").is_file() else LogitsHead()
    else:
        raise ExportError(f"adapter {manifest['version']}: unknown method {method!r}")
    drift, outputs = None, ()
    if not holdout and (path / DRIFT_FILE).is_file():
        drift = DriftReference.load(path / DRIFT_FILE)
    if method != "head" and EMBEDDING in (manifest.get("onnx") or {}).get("outputs", {}):
        outputs = (*head.inputs, EMBEDDING)
    try:
        views = check_serve_views(manifest.get("serve_views", 1), method)
    except InvalidInput as exc:
        raise Damaged(f"adapter {manifest.get('version')} of task {manifest.get('task')!r}: its manifest says {exc}") from exc
    return LoadedAdapter(str(manifest.get("version", "candidate")), head, batcher, manifest, drift, outputs, views)


def _load_head(path: Path, manifest: dict) -> Head:
    try:
        return load_head(path)
    except (OSError, ValueError, KeyError) as exc:
        raise Damaged(f"adapter {manifest.get('version')} of task {manifest.get('task')!r}: its head {path.name} cannot be read ({exc})") from exc


def _load_bank(path: Path, manifest: dict) -> AnomalyModel:
    try:
        return AnomalyModel.load(path)
    except (OSError, ValueError, KeyError) as exc:
        raise Damaged(f"adapter {manifest.get('version')} of task {manifest.get('task')!r}: its bank {path.name} cannot be read ({exc})") from exc


def predict(adapter: LoadedAdapter, tensors: np.ndarray) -> np.ndarray:
    """Probabilities [N, K] for preprocessed inputs [N, 3, H, W], as serving computes them (in the adapter's views)."""
    out = []
    for x in tensors:
        results = adapter.batcher.run_many(views_of(x, adapter.views), adapter.head.inputs)
        out.append(adapter.head(stack_views(results, adapter.views)).mean(axis=0))
    return np.stack(out) if out else np.zeros((0, len(adapter.manifest["class_names"])), np.float32)


def validate(adapter: LoadedAdapter, path: Path) -> None:
    """Run the probe inputs; the answers must match what training computed (also warms up)."""
    with np.load(path / PROBE) as probe:
        inputs, expected = probe["inputs"], probe["probs"]
    got = predict(adapter, inputs)
    if got.shape != expected.shape or not np.all(np.isfinite(got)):
        raise ExportError(f"adapter {adapter.version}: probe output shape {got.shape}, expected {expected.shape}")
    diff = float(np.abs(got - expected).max()) if got.size else 0.0
    if diff > PROBE_TOLERANCE:
        raise Damaged(f"adapter {adapter.version}: answers differ from training by {diff:.3g} on its probe images")
