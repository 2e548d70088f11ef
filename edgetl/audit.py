"""The audit log: every operator and admin action as one JSON line, appended and fsynced.

Fields: time (unix), who, role, action (the RPC), task, version or job when
the request names one, outcome ("OK" or the status code), message; for a
review resolution also item_ids and verdict (accept, relabel, reject, skip).
Reads are recorded only when refused. Read it with `edgetl audit`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Iterator


class AuditLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, who: str, role: str, action: str, request=None, outcome: str = "OK", message: str = "") -> None:
        entry = {"time": round(time.time(), 3), "who": who, "role": role, "action": action, "outcome": outcome}
        for field in ("task", "version", "job_id", "name", "method", "class_name", "operator_id"):
            value = getattr(request, field, None)
            if value:
                entry[field] = value
        items = getattr(request, "item_ids", None)  # review resolutions: which items, and what was done
        if items:
            entry["item_ids"] = list(items)[:500]
            entry["verdict"] = _action_name(request)
        model = getattr(request, "model_name", None)  # KServe v2: a model is a task
        if model:
            entry["task"] = model
        if message:
            entry["message"] = message[:500]
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        with self._lock:
            # O_APPEND: a crash leaves whole lines before it, at worst a torn last line (skipped on read).
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)


def _action_name(request) -> str:
    field = request.DESCRIPTOR.fields_by_name.get("action")
    if field is None or field.enum_type is None:
        return str(getattr(request, "action", ""))
    return field.enum_type.values_by_number[request.action].name.lower() if request.action in field.enum_type.values_by_number else str(request.action)


def read(path: Path, task: str = "", who: str = "", since: float = 0.0) -> Iterator[dict]:
    if not Path(path).is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line after a crash
            if (task and entry.get("task") != task) or (who and entry.get("who") != who) or entry.get("time", 0) < since:
                continue
            yield entry
