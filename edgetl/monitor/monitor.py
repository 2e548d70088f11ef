"""Drift monitoring in the serving process: per task, windows of what it served, and a state.

`DriftMonitor.observe` runs on the event loop after each answer: the
image's drift score and coordinates (a few small matrix products, numpy),
a few appends, and every `window` images the window tests (statistics.py:
reference, features, classes, confidence) and the state machine.
Nothing on that path touches the disk: state changes go to a writer thread
that stores them (SQLite), records them in the audit log and the log.

States, per task and active adapter:

- ``ok``: the last windows looked like the reference;
- ``warning``: a window's z passed the threshold;
- ``drifted``: `windows_to_drift` windows in a row did (3 windows of 100:
  a few hundred images of a changed line);
- back to ``ok`` after `windows_to_clear` quiet windows in a row.

A newly activated adapter starts at ``ok`` with a fresh baseline of the
line's features, class mix and confidence (its first `burn_in` images); a
restart keeps the state, since, and baseline of the adapter it restores.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from edgetl import metrics
from edgetl.db import connect
from edgetl.errors import ConfigError
from edgetl.monitor.reference import DriftReference
from edgetl.monitor.statistics import Moments, class_mix_z, features_z, mean_z
from edgetl.writer import WriterThread

log = logging.getLogger(__name__)

OK, WARNING, DRIFTED = "ok", "warning", "drifted"
LEVEL = {OK: 0, WARNING: 1, DRIFTED: 2}
TESTS = ("reference", "features", "classes", "confidence")

SCHEMA = """
CREATE TABLE IF NOT EXISTS drift_state (
    task            TEXT PRIMARY KEY,
    adapter_version TEXT NOT NULL,
    state           TEXT NOT NULL,
    since           REAL NOT NULL,      -- unix time the state began
    test            TEXT NOT NULL,      -- the test that decided it ('' while ok)
    statistic       REAL NOT NULL,      -- its z then
    images          INTEGER NOT NULL,   -- images seen by this adapter
    baseline        TEXT NOT NULL,      -- JSON: class counts and confidence moments of the first images
    updated_at      REAL NOT NULL
);
"""


@dataclass(frozen=True)
class DriftSettings:
    window: int = 100
    burn_in: int = 500
    threshold_z: float = 4.0
    windows_to_drift: int = 3
    windows_to_clear: int = 3

    @classmethod
    def of(cls, settings) -> DriftSettings:
        config = cls(settings.drift_window, settings.drift_burn_in, settings.drift_threshold_z, settings.drift_windows_to_drift, settings.drift_windows_to_clear)
        if config.window < 10 or config.burn_in < 0 or not config.threshold_z > 0 or config.windows_to_drift < 1 or config.windows_to_clear < 1:
            raise ConfigError(
                f"[drift] window must be at least 10 (got {config.window}), burn_in at least 0 ({config.burn_in}), threshold_z above 0 "
                f"({config.threshold_z}), windows_to_drift and windows_to_clear at least 1 ({config.windows_to_drift}, {config.windows_to_clear})"
            )
        if not 0.0 <= settings.drift_capture_rate <= 1.0:
            raise ConfigError(f"[drift] capture_rate must be between 0 and 1, got {settings.drift_capture_rate}")
        return config


@dataclass
class DriftStatus:
    """What a task's drift looks like now (ListTasks, GetTask, `edgetl drift`, the terminal)."""

    task: str
    adapter_version: str = ""
    state: str = OK
    since: float = 0.0
    test: str = ""
    statistic: float = 0.0
    threshold: float = 0.0
    images: int = 0
    window: int = 0
    has_reference: bool = False
    burn_in_left: int = 0
    last: dict[str, float] = field(default_factory=dict)  # the last window's z per test

    @property
    def message(self) -> str:
        if self.state == OK:
            if not self.images:
                return "no images yet"
            return f"ok over {self.images} images" + ("" if self.has_reference else " (class mix and confidence only: this adapter has no drift reference; retrain it)")
        return f"{self.state}: {self.test} z = {self.statistic:+.1f} (threshold {self.threshold:g}) since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.since))}"


class TaskMonitor:
    """One task's windows and state, for one adapter version. Used from the event loop only."""

    def __init__(self, task: str, version: str, reference: DriftReference | None, num_classes: int, config: DriftSettings, stored: dict | None = None):
        self.task, self.version, self.reference, self.config = task, version, reference, config
        self.status = DriftStatus(task, version, since=time.time(), threshold=config.threshold_z, window=config.window, has_reference=reference is not None)
        self.baseline_counts = np.zeros(num_classes)
        self.baseline_confidence = Moments()
        self.baseline_features = Moments()
        if stored and stored["adapter_version"] == version:
            self.status.state, self.status.since = stored["state"], stored["since"]
            self.status.test, self.status.statistic, self.status.images = stored["test"], stored["statistic"], stored["images"]
            baseline = json.loads(stored["baseline"])
            counts = np.asarray(baseline.get("counts", []), np.float64)
            self.baseline_counts[: len(counts)] = counts[:num_classes]
            self.baseline_confidence = Moments(*baseline.get("confidence", [0, 0, 0]))
            self.baseline_features = Moments(*baseline.get("features", [0, 0, 0]))
        self._reset_window(num_classes)
        self.alarms = self.quiet = 0
        self.status.burn_in_left = max(0, config.burn_in - int(self.baseline_counts.sum()))

    def _reset_window(self, num_classes: int) -> None:
        self.scores: list[np.ndarray] = []
        self.counts = np.zeros(num_classes)
        self.confidences: list[float] = []

    def observe(self, embedding: np.ndarray | None, probs: np.ndarray) -> tuple[str, list[dict]]:
        """Add one answer; returns the state and what must be stored (empty most of the time)."""
        if self.reference is not None and embedding is not None and embedding.shape[-1] == self.reference.dim:
            self.scores.append(self.reference.observe(embedding))
        best = int(np.argmax(probs))
        if best >= len(self.counts):  # a class added since: counts grow with the task
            self.counts = np.append(self.counts, np.zeros(best + 1 - len(self.counts)))
            self.baseline_counts = np.append(self.baseline_counts, np.zeros(best + 1 - len(self.baseline_counts)))
        self.counts[best] += 1
        self.confidences.append(float(probs[best]))
        self.status.images += 1
        if self.status.burn_in_left:
            self.status.burn_in_left = max(0, self.config.burn_in - int(self.baseline_counts.sum()) - len(self.confidences))
        if len(self.confidences) < self.config.window:
            return self.status.state, []
        events = self._close_window()  # first: it may change the state this image reports
        return self.status.state, events

    def _close_window(self) -> list[dict]:
        config, status = self.config, self.status
        z: dict[str, float] = {}
        scores = np.asarray(self.scores)
        if self.reference is not None and self.reference.testable and len(scores) >= config.window // 2:
            z["reference"] = mean_z(scores[:, 0], self.reference.mean, self.reference.spread, len(self.reference.scores))
        events = []
        if self.baseline_counts.sum() < config.burn_in:
            # The line's own first images are the baseline for its features, class mix and confidence.
            self.baseline_counts[: len(self.counts)] += self.counts
            self.baseline_confidence.add_all(np.asarray(self.confidences))
            if len(scores):
                self.baseline_features.add_all(scores)
            status.burn_in_left = max(0, config.burn_in - int(self.baseline_counts.sum()))
            if status.burn_in_left == 0:
                events.append(self._row())
        else:
            base = self.baseline_confidence
            if len(scores) >= config.window // 2:
                z["features"] = features_z(scores, self.baseline_features)
            z["classes"] = class_mix_z(self.baseline_counts, self.counts)
            z["confidence"] = mean_z(-np.asarray(self.confidences), -float(base.mean), max(float(base.sd), 1e-3), int(base.n))
        self._reset_window(len(self.counts))
        status.last = z
        for test in TESTS:
            metrics.DRIFT_Z.labels(self.task, test).set(z.get(test, 0.0))
        # Features may move either way; a class mix only grows more different; confidence matters when it falls.
        strength = {test: abs(value) if test in ("reference", "features") else value for test, value in z.items()}
        test, value = max(strength.items(), key=lambda kv: kv[1], default=("", 0.0))
        alarm = value >= config.threshold_z
        self.alarms, self.quiet = (self.alarms + 1, 0) if alarm else (0, self.quiet + 1)
        state = status.state
        if alarm:
            state = DRIFTED if self.alarms >= config.windows_to_drift or state == DRIFTED else WARNING
        elif self.quiet >= config.windows_to_clear:
            state = OK
        if state != status.state:
            previous = status.state
            status.state, status.since = state, time.time()
            status.test, status.statistic = (test, z[test]) if alarm else ("", 0.0)
            metrics.DRIFT_STATE.labels(self.task).set(LEVEL[state])
            events.append({**self._row(), "previous": previous})
        elif alarm:
            status.test, status.statistic = test, z[test]
        return events

    def _row(self) -> dict:
        s = self.status
        baseline = {"counts": self.baseline_counts.tolist(), "confidence": self.baseline_confidence.as_list(), "features": self.baseline_features.as_list()}
        return {
            "task": self.task, "adapter_version": self.version, "state": s.state, "since": s.since, "test": s.test, "statistic": s.statistic,
            "images": s.images, "baseline": json.dumps(baseline), "updated_at": time.time(),
        }


class DriftMonitor:
    """Every task's drift: `observe` on the serving path, `status` for the API, a writer thread for the rest."""

    def __init__(self, db_path, config: DriftSettings, audit=None, enabled: bool = True):
        self.config = config
        self.enabled = enabled
        self.audit = audit
        self._db = connect(db_path)
        self._db.executescript(SCHEMA)
        columns = ("task", "adapter_version", "state", "since", "test", "statistic", "images", "baseline", "updated_at")
        self._stored = {row[0]: dict(zip(columns, row)) for row in self._db.execute(f"SELECT {', '.join(columns)} FROM drift_state")}
        self._tasks: dict[str, TaskMonitor] = {}
        self._writer: WriterThread[dict] = WriterThread("drift-writer", self._write, self._failed)

    def observe(self, task: str, version: str, reference: DriftReference | None, num_classes: int, embedding: np.ndarray | None, probs: np.ndarray) -> str:
        """Add one answer of `task` served by adapter `version`; returns the task's drift state."""
        if not self.enabled:
            return OK
        monitor = self._tasks.get(task)
        if monitor is None or monitor.version != version:
            # A new adapter (or the first image since start): a fresh window, the stored state if it is this adapter's.
            monitor = self._tasks[task] = TaskMonitor(task, version, reference, num_classes, self.config, self._stored.get(task))
            metrics.DRIFT_STATE.labels(task).set(LEVEL[monitor.status.state])
            if monitor.status.images == 0:
                self._writer.offer({**monitor._row(), "previous": None})
        state, events = monitor.observe(embedding, probs)
        for event in events:
            self._stored[task] = {k: v for k, v in event.items() if k != "previous"}
            self._writer.offer(event)
        return state

    def status(self, task: str, version: str = "") -> DriftStatus:
        monitor = self._tasks.get(task)
        if monitor is not None and (not version or monitor.version == version):
            return monitor.status
        stored = self._stored.get(task)
        if stored and (not version or stored["adapter_version"] == version):
            counted = sum(json.loads(stored["baseline"]).get("counts", []))
            return DriftStatus(
                task, stored["adapter_version"], stored["state"], stored["since"], stored["test"], stored["statistic"], self.config.threshold_z, stored["images"],
                self.config.window, burn_in_left=max(0, self.config.burn_in - int(counted)),
            )
        return DriftStatus(task, version, threshold=self.config.threshold_z, window=self.config.window, burn_in_left=self.config.burn_in)

    # -- the writer thread ----------------------------------------------------
    @staticmethod
    def _failed(event: dict, exc: Exception) -> None:
        log.error("drift state of task %s not stored", event.get("task"), exc_info=exc)  # monitoring never stops serving

    def _write(self, event: dict) -> None:
        previous = event.pop("previous", None)
        columns = ("task", "adapter_version", "state", "since", "test", "statistic", "images", "baseline", "updated_at")
        self._db.execute(
            f"INSERT OR REPLACE INTO drift_state ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", tuple(event[c] for c in columns)
        )
        if previous is None or previous == event["state"]:
            return
        message = f"drift {previous} -> {event['state']}" + (f": {event['test']} z = {event['statistic']:+.1f}" if event["test"] else "")
        message += f" after {event['images']} images of adapter {event['adapter_version']}"
        (log.warning if event["state"] != OK else log.info)("task %s: %s", event["task"], message)
        if self.audit is not None:
            self.audit.record("edgetl", "server", "DriftStateChanged", SimpleNamespace(task=event["task"], version=event["adapter_version"]), message=message)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every state change so far is stored and audited (tests, shutdown)."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self._writer.close(timeout)
        self._db.close()
