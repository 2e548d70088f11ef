"""Adapter versions: directories under ``adapters/<task>/<version>/`` and rows in SQLite.

A training job writes into ``adapters/<task>/.tmp-<job>/``; `register` gives
it the next version number, fsyncs it, renames it into place and only then
inserts its row. A crash at any point leaves either no version or a whole
one (a renamed directory without a row is skipped and its number not
reused). Activations are appended to a history table: the active version
is the latest entry, and rollback goes back one step. An unload (the KServe
repository API) is an entry with version 0: the task then has no active
adapter until one is activated again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgetl.db import connect
from edgetl.errors import NotFound, NotReady
from edgetl.fsutil import fsync_dir, fsync_tree

#: The version recorded by an unload: no adapter is active.
UNLOADED = 0

SCHEMA = """
CREATE TABLE IF NOT EXISTS adapters (
    task       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    method     TEXT NOT NULL,
    created_at REAL NOT NULL,
    backbone   TEXT NOT NULL,
    export_id  TEXT NOT NULL,
    metrics    TEXT NOT NULL,   -- JSON, on the validation split at training time
    options    TEXT NOT NULL,   -- JSON
    labels     TEXT NOT NULL,   -- JSON snapshot: count, max_label_id, hash
    extra      TEXT NOT NULL,   -- JSON: scratch metrics, ...
    PRIMARY KEY (task, version)
);
CREATE TABLE IF NOT EXISTS activations (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    task    TEXT NOT NULL,
    version INTEGER NOT NULL,
    at      REAL NOT NULL,
    reason  TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AdapterVersion:
    task: str
    version: int
    method: str
    created_at: float
    backbone: str
    export_id: str
    metrics: dict
    options: dict
    labels: dict
    extra: dict
    path: Path


class AdapterVersions:
    def __init__(self, data_dir: Path, db_path: Path):
        self.root = Path(data_dir) / "adapters"
        self._db = connect(db_path)
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(SCHEMA)

    def task_dir(self, task: str) -> Path:
        return self.root / task

    def temp_dir(self, task: str, job_id: str) -> Path:
        return self.task_dir(task) / f".tmp-{job_id}"

    def clean_temp_dirs(self) -> int:
        """Remove what interrupted jobs left behind (at start-up)."""
        removed = 0
        for tmp in self.root.glob("*/.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
        return removed

    def register(self, task: str, tmp: Path, manifest_update) -> AdapterVersion:
        """Number, fsync and rename `tmp` into place, then record it.

        `manifest_update(version) -> dict` returns the row's fields and is
        written into the directory's manifest before the rename.
        """
        with self._lock:
            version = self._next_version(task)
            fields = manifest_update(version)
            final = self.task_dir(task) / str(version)
            fsync_tree(tmp)
            os.replace(tmp, final)
            fsync_dir(final.parent)
            self._db.execute(
                "INSERT INTO adapters (task, version, method, created_at, backbone, export_id, metrics, options, labels, extra) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task, version, fields["method"], time.time(), fields["backbone"], fields["export_id"],
                    json.dumps(fields["metrics"]), json.dumps(fields["options"]), json.dumps(fields["labels"]), json.dumps(fields.get("extra", {})),
                ),
            )
        return self.get(task, version)

    def _next_version(self, task: str) -> int:
        row = self._db.execute("SELECT MAX(version) FROM adapters WHERE task = ?", (task,)).fetchone()
        on_disk = [int(p.name) for p in self.task_dir(task).glob("*") if re.fullmatch(r"\d+", p.name)]
        return max([row[0] or 0, *on_disk]) + 1

    def get(self, task: str, version: int | str) -> AdapterVersion:
        try:
            number = int(str(version).lstrip("v"))
        except ValueError:
            raise NotFound(f"adapter version {version!r} is not a number") from None
        with self._lock:
            row = self._db.execute("SELECT * FROM adapters WHERE task = ? AND version = ?", (task, number)).fetchone()
        if row is None:
            known = ", ".join(str(a.version) for a in self.list(task)) or "none yet"
            raise NotFound(f"task {task!r} has no adapter version {version}; versions: {known}")
        return self._row(row)

    def list(self, task: str) -> list[AdapterVersion]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM adapters WHERE task = ? ORDER BY version", (task,)).fetchall()
        return [self._row(r) for r in rows]

    def _row(self, row) -> AdapterVersion:
        task, version = row[0], row[1]
        return AdapterVersion(
            task, version, row[2], row[3], row[4], row[5], json.loads(row[6]), json.loads(row[7]), json.loads(row[8]), json.loads(row[9]),
            self.task_dir(task) / str(version),
        )

    # -- activation history ---------------------------------------------------
    def record_activation(self, task: str, version: int, reason: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO activations (task, version, at, reason) VALUES (?, ?, ?, ?)", (task, version, time.time(), reason))

    def record_unload(self, task: str) -> None:
        self.record_activation(task, UNLOADED, "unload")

    def active_version(self, task: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT version FROM activations WHERE task = ? ORDER BY id DESC LIMIT 1", (task,)).fetchone()
        return row[0] if row and row[0] != UNLOADED else None

    def activated_versions(self, task: str) -> set[int]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT DISTINCT version FROM activations WHERE task = ?", (task,))} - {UNLOADED}

    def previous_version(self, task: str) -> int:
        """The version to roll back to.

        The history is read as a stack: an activation pushes its version, a
        rollback pops the current one. So v1 -> v2 -> v3, rollback, rollback
        goes back to v2 and then to v1, not back and forth between v2 and v3.
        """
        with self._lock:
            history = self._db.execute("SELECT version, reason FROM activations WHERE task = ? ORDER BY id", (task,)).fetchall()
        if not history or history[-1][0] == UNLOADED:
            raise NotReady(f"task {task!r} has no active adapter to roll back from")
        stack: list[int] = []
        for version, reason in history:
            if version == UNLOADED:
                continue
            if reason == "rollback":
                stack.pop()
            elif not stack or stack[-1] != version:
                stack.append(version)
        if len(stack) < 2:
            raise NotReady(f"task {task!r}: version {stack[-1] if stack else '?'} has no earlier active version to roll back to")
        return stack[-2]

    def tasks_with_active_adapters(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT task, version FROM activations WHERE id IN (SELECT MAX(id) FROM activations GROUP BY task)"
            ).fetchall()
        return {task: version for task, version in rows if version != UNLOADED}

    def close(self) -> None:
        with self._lock:
            self._db.close()
