"""Online enrolment: a good part an operator confirmed joins the bank, without a training job.

The part is labelled `good` (so the next training has it too), seen by the
backbone as the camera saw it (training adds its flips), and its patches that lie
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
import logging
import os
import shutil
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from edgetl.anomaly.bank import image_score, nearest_rows
from edgetl.anomaly.model import DEFAULTS, FILE, AnomalyModel
from edgetl.anomaly.threshold import Calibration, calibrate, with_threshold
from edgetl.errors import InvalidInput, NotReady
from edgetl.fsutil import sha256_file
from edgetl.runtime.adapters import MANIFEST, PROBE, LoadedAdapter
from edgetl.runtime.preprocess import EncodedImage, decode
from edgetl.runtime.views import views_of

log = logging.getLogger("edgetl.anomaly")

#: Views of an enrolled part: the one the camera saw.
ENROL_VIEWS = 1
#: A bank may grow online to this many times `max_patches`; past it, retrain.
GROWTH_LIMIT = 2.0


@dataclass(frozen=True)
class ThresholdChange:
    version: str
    parent_version: str
    calibration: Calibration
    previous_threshold: float


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
    """The bank with the part's uncovered patches, recalibrated; the part's score before; how many were added.

    An added row takes the spread of the bank row nearest to it (the
    region of good patches it extends); the reference sample the others
    were measured against is not kept, and a score is a minimum over rows,
    so the new row can only lower scores.
    """
    candidates, distances, neighbours = [], [], []
    score = 0.0
    for i, maps in enumerate(views):
        patches, _ = model.patches(maps)
        patches = patches.astype(np.float16).astype(np.float32)  # as stored
        nearest, index, scores = nearest_rows(patches, model.bank, model.bank_sq, model.row_weights)
        if i == 0:
            score = image_score(scores)  # the part as served, against the bank without it
        far = nearest > model.radius  # coverage is in plain distance, as the coreset chose the bank
        candidates.append(patches[far])
        distances.append(nearest[far])
        neighbours.append(index[far])
    picked = _cover(np.concatenate(candidates), np.concatenate(distances), model.radius)
    added = np.concatenate(candidates)[picked]
    if len(model.bank) + len(added) > max_bank:
        raise NotReady(
            f"the bank would hold {len(model.bank) + len(added)} patches, over {max_bank} "
            f"({GROWTH_LIMIT:g}x its training size): retrain the task (edgetl train) to re-select it"
        )
    loo = np.append(model.loo, score) if model.loo is not None else np.array([score])
    calibration = calibrate(loo, model.calibration.false_alarm_rate) if len(loo) >= 2 else model.calibration
    spread = None if model.spread is None else np.concatenate([model.spread, model.spread[np.concatenate(neighbours)[picked]]])
    grown = model.derived(bank=np.concatenate([model.bank, added]), spread=spread, calibration=calibration, loo=loo)
    return grown, float(score), len(added)


def _cover(rows: np.ndarray, nearest: np.ndarray, radius: float) -> np.ndarray:
    """Greedy k-centre on the new patches, continued from the bank: indices of those picked, farthest first, until all lie within `radius`.

    `nearest` is each row's distance to the bank; it is updated with each
    pick, so two new patches that cover each other are not both added.
    """
    nearest = nearest.astype(np.float32, copy=True)
    rows_sq = np.einsum("nd,nd->n", rows, rows)
    picked = []
    while len(rows) and (i := int(nearest.argmax())) >= 0 and nearest[i] > radius:
        picked.append(i)
        d = np.sqrt(np.maximum(rows_sq - 2.0 * (rows @ rows[i]) + rows_sq[i], 0.0))
        np.minimum(nearest, d, out=nearest)
    return np.array(picked, np.int64)


class Enroller:
    """Online changes to anomaly tasks' active banks, one at a time per task: confirmed good parts
    join them (`enroll`), and operators set their threshold (`set_threshold`); each is a new version."""

    def __init__(self, engine, versions, activator, labels, max_pixels: int):
        self.engine, self.versions, self.activator, self.labels = engine, versions, activator, labels
        self.max_pixels = max_pixels
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._probe_cache: dict = {}

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
            labelled = time.perf_counter()
            version, grown, manifest = await asyncio.to_thread(self._new_version, task, parent, active, data, label.image_sha256, operator)
            written = time.perf_counter()
            loaded = LoadedAdapter(version.version, grown, active.batcher, manifest, active.drift, active.outputs)
            adapter = await self.activator.activate(task.name, version.version, reason="enrolled", loaded=loaded)
        done = time.perf_counter()
        log.info(
            "task %s: good part enrolled by %s as version %s (%d new patches) in %.0f ms: label %.0f, bank and version %.0f, activation %.0f",
            task.name, operator, adapter.version, version.patches_added, (done - started) * 1000,
            (labelled - started) * 1000, (written - labelled) * 1000, (done - written) * 1000,
        )
        return Enrolment(
            str(adapter.version), str(parent.version), version.score, version.threshold, active.head.calibration.threshold,
            version.patches_added, version.bank_patches, label.image_sha256, (time.perf_counter() - started) * 1000,
        )

    def _new_version(self, task, parent, active, data: bytes, image_sha256: str, operator: str) -> tuple[Enrolment, AnomalyModel, dict]:
        model: AnomalyModel = active.head
        clock = _Clock()
        manifest = json.loads((parent.path / MANIFEST).read_text())
        options = manifest.get("options", {})
        session = self._session(task, active)
        x = session.preprocess(decode(EncodedImage(data), self.max_pixels))
        # The part as the camera saw it (its flips and turns join at the next training job): one
        # backbone run and one search instead of eight keeps an enrolment near 100 ms on 2 cores.
        outputs = session.run(np.stack(views_of(x, ENROL_VIEWS)), list(model.inputs))
        maps = [{name: outputs[name][v] for name in model.inputs} for v in range(ENROL_VIEWS)]
        clock.lap("backbone")
        max_bank = int(GROWTH_LIMIT * int(options.get("max_patches") or DEFAULTS["max_patches"]))
        grown, score, added = grow(model, maps, max_bank)
        clock.lap("bank")
        record = {"parent": str(parent.version), "image_sha256": image_sha256, "operator": operator, "patches_added": added, "score": score}
        registered = self._write_version(task, parent, session, grown, manifest, "enrolled", record, clock)
        enrolment = Enrolment(str(registered.version), str(parent.version), score, grown.calibration.threshold, model.calibration.threshold, added, len(grown.bank), image_sha256, 0.0)
        log.info("task %s: enrolment steps %s", task.name, clock)
        return enrolment, grown, manifest

    def _session(self, task, active):
        return active.batcher.session if active.batcher is not None else self.engine.batchers[task.backbone].session

    def _write_version(self, task, parent, session, model: AnomalyModel, manifest: dict, event: str, record: dict, clock: _Clock):
        """`model` as a new version of `parent` (registered, not yet active); `manifest[event] = record` says what changed."""
        options = manifest.get("options", {})
        tmp = self.versions.temp_dir(task.name, f"{event}-{uuid.uuid4().hex[:8]}")
        try:
            # Unchanged files (the holdout bank, the probe inputs) are hard links: adapter files are
            # never written in place (a new file is renamed over), so sharing them is safe.
            shutil.copytree(parent.path, tmp, copy_function=_link_or_copy)
            for rewritten in (MANIFEST, FILE, PROBE):  # unlinked first: writing through a link would change the parent
                (tmp / rewritten).unlink()
            model.save(tmp / FILE)
            # One probe image (of the parent's): enough to catch a bank that does not answer as it was
            # written, at a quarter of the cost of scoring four on every enrolment.
            inputs, probe_out = self._probe_maps(parent.path / PROBE, session, model.inputs)
            np.savez(tmp / PROBE, inputs=inputs, probs=model(probe_out) if len(inputs) else np.zeros((0, 2), np.float32))
            clock.lap("files and probe")
            bank = {**options.get("bank", {}), "bank_patches": len(model.bank), "bank_bytes": int(model.bank.size * 2), "calibration": model.calibration.to_dict()}
            manifest["options"] = {**options, "bank": bank}
            manifest[event] = record
            # The linked files keep their recorded hashes (load_adapter checks them all on every later load).
            manifest["files"] = {**manifest["files"], FILE: sha256_file(tmp / FILE), PROBE: sha256_file(tmp / PROBE)}

            def fields(version: int) -> dict:
                manifest["version"] = version
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
                return {
                    "method": "anomaly", "backbone": parent.backbone, "export_id": parent.export_id, "metrics": parent.metrics,
                    "options": manifest["options"], "labels": parent.labels, "extra": {event: record},
                }

            registered = self.versions.register(task.name, tmp, fields)
            clock.lap("register")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return registered

    # -- the operator's threshold ---------------------------------------------------
    async def set_threshold(self, task_name: str, operator: str, false_alarm_rate: float | None = None, threshold: float | None = None) -> ThresholdChange:
        """The active bank with a new threshold, as a new version, activated: the operator's sensitivity.

        Set for `false_alarm_rate` (the threshold training would have set for
        that rate) or to `threshold` outright; exactly one of them.
        """
        task = self.engine.get_task(task_name)
        if task.kind != "anomaly":
            raise InvalidInput(f"task {task.name!r} is a {task.kind} task; a threshold is set on anomaly tasks")
        if (false_alarm_rate is None) == (threshold is None):
            raise InvalidInput("set exactly one of false_alarm_rate (e.g. 0.01) and threshold (a score)")
        async with self._locks[task.name]:
            active = self.engine.adapters.get(task.name)
            if active is None or not isinstance(active.head, AnomalyModel):
                raise NotReady(f"task {task.name!r} has no active anomaly adapter yet; label good images and train one (edgetl train --task {task.name})")
            model: AnomalyModel = active.head
            if model.loo is None or len(model.loo) < 2:
                raise NotReady(f"version {active.version} of task {task.name!r} keeps no leave-one-out scores to set a threshold from; retrain it")
            try:
                calibration = calibrate(model.loo, float(false_alarm_rate)) if threshold is None else with_threshold(model.loo, float(threshold))
            except ValueError as exc:
                raise InvalidInput(f"{exc}; version {active.version} keeps serving") from None
            changed = model.derived(calibration=calibration)
            parent = self.versions.get(task.name, active.version)
            record = {
                "parent": str(parent.version), "operator": operator, "previous_threshold": model.calibration.threshold,
                "asked": {"false_alarm_rate": false_alarm_rate} if threshold is None else {"threshold": threshold},
            }

            def write():
                manifest = json.loads((parent.path / MANIFEST).read_text())
                return self._write_version(task, parent, self._session(task, active), changed, manifest, "threshold_set", record, _Clock()), manifest

            registered, manifest = await asyncio.to_thread(write)
            loaded = LoadedAdapter(registered.version, changed, active.batcher, manifest, active.drift, active.outputs)
            adapter = await self.activator.activate(task.name, registered.version, reason="threshold", loaded=loaded)
        log.info(
            "task %s: threshold %.4f -> %.4f by %s as version %s (expected false alarms %.2f%%, at most %.1f%% without a model)",
            task.name, model.calibration.threshold, calibration.threshold, operator, adapter.version,
            100 * calibration.false_alarm_rate, 100 * calibration.guaranteed_false_alarm_rate,
        )
        return ThresholdChange(str(adapter.version), str(parent.version), calibration, model.calibration.threshold)

    def _probe_maps(self, path, session, names) -> tuple[np.ndarray, dict]:
        """The probe images and their backbone maps; the same inputs pass from version to version, so their maps are kept."""
        key = (sha256_file(path), tuple(names))
        if key not in self._probe_cache:
            with np.load(path) as probe:
                inputs = probe["inputs"][:1]
            self._probe_cache.clear()  # one task's probe at a time is all an enrolment streak needs
            self._probe_cache[key] = (inputs, session.run(inputs, list(names)) if len(inputs) else {})
        return self._probe_cache[key]


class _Clock:
    """Milliseconds per step, for the log: where an enrolment's time went."""

    def __init__(self):
        self.last, self.steps = time.perf_counter(), {}

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] = round((now - self.last) * 1000, 1)
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.0f} ms" for k, v in self.steps.items())


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copy2(src, dst)
