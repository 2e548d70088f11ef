"""The task store: tasks in SQLite (WAL, synchronous=FULL) under the data directory.

A task created here exists across restarts. Built-in tasks (a backbone's own
classifier, e.g. `imagenet`) are not stored: they come with their backbone.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgetl.db import connect
from edgetl.errors import AlreadyExists, InvalidInput, NotFound

TASK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_CLASSES = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    name        TEXT PRIMARY KEY,
    backbone    TEXT NOT NULL,
    class_names TEXT NOT NULL,      -- JSON list, order is the score order
    created_at  REAL NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'classify'
);
"""
#: Task kinds: classes learned from labelled examples of each, or "not like the good parts".
KINDS = ("classify", "anomaly")
#: An anomaly task's classes, fixed: the verdict is one of them, and labels use them.
ANOMALY_CLASSES = ("good", "anomaly")


@dataclass(frozen=True)
class Task:
    """An inspection task: its name, the backbone it runs on, its classes."""

    name: str
    backbone: str
    class_names: tuple[str, ...]
    builtin: bool = False
    kind: str = "classify"


def validate_task(name: str, class_names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if not TASK_NAME_RE.match(name or ""):
        raise InvalidInput(f"task name {name!r} must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
    classes = tuple(c.strip() for c in class_names)
    if len(classes) < 2:
        raise InvalidInput(f"task {name!r} needs at least two class names (e.g. 'ok' and 'defect'), got {list(classes)}")
    if len(classes) > MAX_CLASSES:
        raise InvalidInput(f"task {name!r} has {len(classes)} classes; the limit is {MAX_CLASSES}")
    if any(not c or len(c) > 128 for c in classes):
        raise InvalidInput(f"task {name!r}: class names must be 1-128 characters")
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise InvalidInput(f"task {name!r}: class names repeat: {duplicates}")
    return classes


class TaskStore:
    """Create and read tasks. Safe to share between threads."""

    def __init__(self, path: Path):
        self._db = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(tasks)")}
            if "kind" not in columns:  # a data directory from before anomaly tasks
                self._db.execute("ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'classify'")

    def create(self, name: str, class_names, backbone: str, kind: str = "classify") -> Task:
        kind = kind or "classify"
        if kind not in KINDS:
            raise InvalidInput(f"task kind {kind!r} is not one of {', '.join(KINDS)}")
        if kind == "anomaly":
            if class_names and tuple(c.strip() for c in class_names) != ANOMALY_CLASSES:
                raise InvalidInput(f"an anomaly task's classes are {', '.join(ANOMALY_CLASSES)}; leave them out (got {list(class_names)})")
            class_names = ANOMALY_CLASSES
        classes = validate_task(name, class_names)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO tasks (name, backbone, class_names, created_at, kind) VALUES (?, ?, ?, ?, ?)",
                    (name, backbone, json.dumps(classes), time.time(), kind),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"task {name!r} already exists") from None
        return Task(name, backbone, classes, kind=kind)

    def add_class(self, name: str, class_name: str) -> Task:
        """Append `class_name` to the task's classes. Appending keeps every
        existing class at its index, so adapters trained before still map
        their scores to the right names (and answer 0 for the new class)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(f"SELECT {COLUMNS} FROM tasks WHERE name = ?", (name,)).fetchone()
                if row is None:
                    raise NotFound(f"unknown task {name!r}")
                task = _task(row)
                if task.kind == "anomaly":
                    raise InvalidInput(f"task {name!r} is an anomaly task; its classes are fixed ({', '.join(ANOMALY_CLASSES)}). Create a classify task for defect types")
                if class_name.strip() in task.class_names:
                    raise AlreadyExists(f"task {name!r} already has class {class_name.strip()!r}")
                classes = validate_task(name, [*task.class_names, class_name])
                self._db.execute("UPDATE tasks SET class_names = ? WHERE name = ?", (json.dumps(classes), name))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Task(task.name, task.backbone, classes, kind=task.kind)

    def get(self, name: str) -> Task | None:
        with self._lock:
            row = self._db.execute(f"SELECT {COLUMNS} FROM tasks WHERE name = ?", (name,)).fetchone()
        return _task(row) if row else None

    def list(self) -> list[Task]:
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM tasks ORDER BY name").fetchall()
        return [_task(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


COLUMNS = "name, backbone, class_names, kind"


def _task(row) -> Task:
    return Task(row[0], row[1], tuple(json.loads(row[2])), kind=row[3])

