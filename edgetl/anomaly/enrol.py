"""Online enrolment: a good part an operator confirmed joins the bank, without a training job.

The part is labelled `good` (so the next training has it too), seen by the
backbone in the adapter's views (one batched run), and its patches that lie
farther from the bank than the coreset's covering radius are added: the
rest are already covered, and adding them would only grow the bank. Its
score against the bank before the addition is exactly a leave-one-out score,
so the threshold is recalibrated with it (n + 1 scores). The result is a new
adapter version, written and registered like a trained one (every file
hashed, fsynced, renamed into place), probe-checked on load and activated:
versioned, rollback-able and crash-safe like every adapter.

What the gate can say about it: adding good patches can only lower every
image's distance to the bank, so no part scores higher than before; the
threshold moves with the evidence. A bank past `GROWTH_LIMIT` times its
training size is refused: a training job re-selects the coreset.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.adapt.features import VIEWS
from edgetl.anomaly.bank import image_score, nearest_distances, patch_features
from edgetl.anomaly.model import DEFAULTS, FILE, AnomalyModel
from edgetl.anomaly.threshold import calibrate
from edgetl.errors import InvalidInput, NotReady
from edgetl.fsutil import sha256_file
from edgetl.runtime.adapters import MANIFEST, PROBE
from edgetl.runtime.preprocess import EncodedImage, decode

#: A bank may grow online to this many times `max_patches`; past it, retrain.
GROWTH_LIMIT = 2.0


@dataclass(frozen=True)
class Enrolment:
    version: str
    parent_version: str
    score: float
    threshold: float
    previous_threshold: float
    patches_added: int
    bank_patches: int
    image_sha256: str
    elapsed_ms: float


def grow(model: AnomalyModel, views: list[dict[str, np.ndarray]], max_bank: int) -> tuple[AnomalyModel, float, int]:
    """The bank with the part's uncovered patches, recalibrated; the part's score before; how many were added."""
    score = None
    new_rows: list[np.ndarray] = []
    for i, maps in enumerate(views):
        patches, _ = patch_features(maps, model.inputs, model.scales)
        patches = patches.astype(np.float16).astype(np.float32)  # as stored
        distances = nearest_distances(patches, model.bank, model.bank_sq)
        if i == 0:
            score = image_score(distances)  # the part as served, against the bank without it
        new_rows.append(patches[distances > model.radius])
    added = _spread(np.concatenate(new_rows), model.radius) if new_rows else np.zeros((0, model.bank.shape[1]), np.float32)
    if len(model.bank) + len(added) > max_bank:
        raise NotReady(
            f"the bank would hold {len(model.bank) + len(added)} patches, over {max_bank} "
            f"({GROWTH_LIMIT:g}x its training size): retrain the task (edgetl train) to re-select it"
        )
    loo = np.append(model.loo, score) if model.loo is not None else np.array([score])
    calibration = calibrate(loo, model.calibration.false_alarm_rate) if len(loo) >= 2 else model.calibration
    grown = AnomalyModel(model.inputs, model.scales, np.concatenate([model.bank, added]), model.radius, calibration, loo=loo)
    return grown, float(score), len(added)


def _spread(rows: np.ndarray, radius: float) -> np.ndarray:
    """Of the new patches, those at least `radius` apart (greedy): no two that cover each other."""
    kept: list[np.ndarray] = []
    for row in rows:
        if not kept or nearest_distances(row[None], np.stack(kept))[0] > radius:
            kept.append(row)
    return np.stack(kept) if kept else np.zeros((0, rows.shape[1]), np.float32)


class Enroller:
    """Adds confirmed good parts to anomaly tasks' active banks, one at a time per task."""

    def __init__(self, engine, versions, activator, labels, max_pixels: int):
        self.engine, self.versions, self.activator, self.labels = engine, versions, activator, labels
        self.max_pixels = max_pixels
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def enroll(self, task_name: str, data: bytes, operator: str) -> Enrolment:
        started = time.perf_counter()
        task = self.engine.get_task(task_name)
        if task.kind != "anomaly":
            raise InvalidInput(f"task {task.name!r} is a {task.kind} task; good parts are enrolled in anomaly tasks (label this image instead)")
        async with self._locks[task.name]:
            active = self.engine.adapters.get(task.name)
            if active is None or not isinstance(active.head, AnomalyModel):
                raise NotReady(f"task {task.name!r} has no active anomaly adapter yet; label good images and train one (edgetl train --task {task.name})")
            parent = self.versions.get(task.name, active.version)
            label = await asyncio.to_thread(self.labels.add, task.name, task.class_names, data, task.class_names[0], operator, "", self.max_pixels)
            version = await asyncio.to_thread(self._new_version, task, parent, active, data, label.image_sha256, operator)
            adapter = await self.activator.activate(task.name, version.version, reason="enrolled")
        return Enrolment(
            str(adapter.version), str(parent.version), version.score, version.threshold, active.head.calibration.threshold,
            version.patches_added, version.bank_patches, label.image_sha256, (time.perf_counter() - started) * 1000,
        )

    def _new_version(self, task, parent, active, data: bytes, image_sha256: str, operator: str) -> Enrolment:
        model: AnomalyModel = active.head
        manifest = json.loads((parent.path / MANIFEST).read_text())
        options = manifest.get("options", {})
        session = active.batcher.session if active.batcher is not None else self.engine.batchers[task.backbone].session
        x = session.preprocess(decode(EncodedImage(data), self.max_pixels))
        views = int(options.get("views") or DEFAULTS["views"])
        outputs = session.run(np.stack([np.ascontiguousarray(VIEWS[v](x)) for v in range(views)]), list(model.inputs))  # one batched run
        maps = [{name: outputs[name][v] for name in model.inputs} for v in range(views)]
        max_bank = int(GROWTH_LIMIT * int(options.get("max_patches") or DEFAULTS["max_patches"]))
        grown, score, added = grow(model, maps, max_bank)

        tmp = self.versions.temp_dir(task.name, f"enrol-{uuid.uuid4().hex[:8]}")
        try:
            shutil.copytree(parent.path, tmp)
            grown.save(tmp / FILE)
            with np.load(tmp / PROBE) as probe:
                inputs = probe["inputs"]
            probe_out = session.run(inputs, list(model.inputs)) if len(inputs) else {}
            np.savez(tmp / PROBE, inputs=inputs, probs=grown(probe_out) if len(inputs) else np.zeros((0, 2), np.float32))
            bank = {**options.get("bank", {}), "bank_patches": len(grown.bank), "bank_bytes": int(grown.bank.size * 2), "calibration": grown.calibration.to_dict()}
            manifest["options"] = {**options, "bank": bank}
            manifest["enrolled"] = {"parent": str(parent.version), "image_sha256": image_sha256, "operator": operator, "patches_added": added, "score": score}
            manifest["files"] = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(Path(tmp).rglob("*")) if p.is_file() and p.name != MANIFEST}

            def fields(version: int) -> dict:
                manifest["version"] = version
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
                return {
                    "method": "anomaly", "backbone": parent.backbone, "export_id": parent.export_id, "metrics": parent.metrics,
                    "options": manifest["options"], "labels": parent.labels, "extra": {"enrolled": manifest["enrolled"]},
                }

            registered = self.versions.register(task.name, tmp, fields)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Enrolment(str(registered.version), str(parent.version), score, grown.calibration.threshold, model.calibration.threshold, added, len(grown.bank), image_sha256, 0.0)
