"""Capture policies: which classified images a task keeps for review, and how many.

A policy is data: thresholds for "uncertain", the share of traffic sampled
at random, and caps. The server's defaults come from settings ([review]);
an admin can override any field per task at run time, and the overrides
live in SQLite beside the tasks, so they survive restarts.

Deciding is cheap (a comparison or two and one random draw) because it runs
for every classified image, on the serving path.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from dataclasses import dataclass

import numpy as np

from edgetl.db import connect
from edgetl.errors import InvalidInput

#: Reasons this module decides. Other features add their own (e.g. drift
#: monitoring adds "drifted"); the store keeps any string.
UNCERTAIN, RANDOM, FLAGGED = "uncertain", "random", "flagged"

SCHEMA = """
CREATE TABLE IF NOT EXISTS capture_policies (
    task       TEXT PRIMARY KEY,
    policy     TEXT NOT NULL,      -- JSON: only the fields an admin changed
    updated_at REAL NOT NULL,
    updated_by TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class CapturePolicy:
    """What a task captures for review. Defaults suit a line at a few images a second."""

    enabled: bool = True
    #: Keep the image when the best class's probability is below this...
    uncertain_score: float = 0.6
    #: ...or when it leads the second best by less than this.
    uncertain_margin: float = 0.15
    #: Keep this share of all traffic regardless of the answer: the unbiased
    #: sample that live accuracy is estimated from (1 in 200).
    random_rate: float = 0.005
    #: At most this many captures per sliding minute, hour and day, so an
    #: unsure adapter on a fast line cannot bury the operator (or the disk).
    per_minute: int = 30
    per_hour: int = 600
    per_day: int = 3000
    #: Review images kept on disk for the task; past it the oldest
    #: unreviewed items are removed first.
    disk_bytes: int = 1 << 30

    def reasons(self, score: float, margin: float, flagged: bool, draw: float) -> list[str]:
        """Why this prediction should be reviewed (empty: it should not).

        `draw` is a uniform random number in [0, 1), drawn for every image
        so that the random sample does not depend on the answer.
        """
        if not self.enabled:
            return []
        reasons = []
        if flagged:
            reasons.append(FLAGGED)
        if score < self.uncertain_score or margin < self.uncertain_margin:
            reasons.append(UNCERTAIN)
        if draw < self.random_rate:
            reasons.append(RANDOM)
        return reasons

    def with_changes(self, changes: dict) -> "CapturePolicy":
        policy = dataclasses.replace(self, **changes)
        policy.validate()
        return policy

    def validate(self) -> None:
        for name in ("uncertain_score", "uncertain_margin", "random_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0 or value != value:
                raise InvalidInput(f"capture policy {name} = {value} must be between 0 and 1")
        for name in ("per_minute", "per_hour", "per_day", "disk_bytes"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"capture policy {name} must not be negative")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = tuple(f.name for f in dataclasses.fields(CapturePolicy))


def margin_of(scores: np.ndarray) -> float:
    """Best minus second-best probability (1.0 for a single class)."""
    if len(scores) < 2:
        return 1.0
    two = np.partition(scores, len(scores) - 2)[-2:]
    return float(two[1] - two[0])


def default_policy(settings) -> CapturePolicy:
    """The server's default policy, from settings ([review])."""
    policy = CapturePolicy(
        enabled=settings.capture,
        uncertain_score=settings.capture_uncertain_score,
        uncertain_margin=settings.capture_uncertain_margin,
        random_rate=settings.capture_random_rate,
        per_minute=settings.capture_per_minute,
        per_hour=settings.capture_per_hour,
        per_day=settings.capture_per_day,
        disk_bytes=int(settings.capture_disk_mb * 1024 * 1024),
    )
    policy.validate()
    return policy


@dataclass(frozen=True)
class StoredPolicy:
    policy: CapturePolicy
    customized: bool
    updated_at: float = 0.0
    updated_by: str = ""


class CapturePolicies:
    """Per-task policies: the defaults plus each task's overrides, cached in memory.

    `get` is called for every classified image, so it is a dict lookup; a
    change goes to SQLite first and then replaces the cached entry whole.
    """

    def __init__(self, db_path, defaults: CapturePolicy):
        self.defaults = defaults
        self._db = connect(db_path)
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(SCHEMA)
            rows = self._db.execute("SELECT task, policy, updated_at, updated_by FROM capture_policies").fetchall()
        self._stored: dict[str, StoredPolicy] = {}
        for task, policy, at, by in rows:
            overrides = {k: v for k, v in json.loads(policy).items() if k in FIELDS}
            try:
                self._stored[task] = StoredPolicy(dataclasses.replace(defaults, **overrides), True, at, by)
            except (TypeError, InvalidInput):
                continue  # a policy from a newer or older edgetl that no longer fits: the defaults apply
        self._random = random.Random()

    def get(self, task: str) -> CapturePolicy:
        stored = self._stored.get(task)
        return stored.policy if stored is not None else self.defaults

    def describe(self, task: str) -> StoredPolicy:
        return self._stored.get(task) or StoredPolicy(self.defaults, False)

    def draw(self) -> float:
        return self._random.random()

    def update(self, task: str, changes: dict, who: str, reset: bool = False) -> StoredPolicy:
        """Apply `changes` (field -> value) over the task's policy (or the defaults, with `reset`)."""
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise InvalidInput(f"unknown capture policy fields {sorted(unknown)}; known: {', '.join(FIELDS)}")
        with self._lock:
            row = self._db.execute("SELECT policy FROM capture_policies WHERE task = ?", (task,)).fetchone()
            overrides = {} if reset or row is None else json.loads(row[0])
            overrides.update(changes)
            # Keep only what differs from the defaults, so a later change of a
            # default reaches the fields this task never changed.
            overrides = {k: v for k, v in overrides.items() if k in FIELDS and getattr(self.defaults, k) != v}
            policy = self.defaults.with_changes(overrides)  # validates
            now = time.time()
            if overrides:
                self._db.execute(
                    "INSERT INTO capture_policies (task, policy, updated_at, updated_by) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(task) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    (task, json.dumps(overrides, sort_keys=True), now, who),
                )
                stored = StoredPolicy(policy, True, now, who)
                self._stored[task] = stored
            else:
                self._db.execute("DELETE FROM capture_policies WHERE task = ?", (task,))
                self._stored.pop(task, None)
                stored = StoredPolicy(policy, False, now, who)
        return stored

    def close(self) -> None:
        with self._lock:
            self._db.close()
