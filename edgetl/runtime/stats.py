"""Recent throughput and latency per task, for people (the terminal's overview).

Prometheus has the full histograms for machines; this answers "how is the
line doing right now" over the last minute without a monitoring stack. A
bounded deque per task, appended on the event loop after each answer: O(1),
no lock, no allocation beyond the tuple.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

WINDOW_S = 60.0
CAPACITY = 8192  # answers kept per task; past ~136 img/s the window is the last 8192 answers


@dataclass
class _TaskRecord:
    recent: deque = field(default_factory=lambda: deque(maxlen=CAPACITY))  # (monotonic time, total_ms)
    images: int = 0
    failures: int = 0


@dataclass(frozen=True)
class TaskStats:
    task: str
    images_total: int
    failures_total: int
    images_per_second: float
    p50_ms: float
    p95_ms: float
    images_in_window: int


class RecentStats:
    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self.started = time.monotonic()
        self._tasks: dict[str, _TaskRecord] = {}

    def record(self, task: str, total_ms: float) -> None:
        record = self._tasks.get(task)
        if record is None:
            record = self._tasks[task] = _TaskRecord()
        record.recent.append((time.monotonic(), total_ms))
        record.images += 1

    def failure(self, task: str) -> None:
        record = self._tasks.get(task)
        if record is None:
            record = self._tasks[task] = _TaskRecord()
        record.failures += 1

    def uptime_s(self) -> float:
        return time.monotonic() - self.started

    def snapshot(self, tasks: list[str]) -> list[TaskStats]:
        """Stats for `tasks` (known task names; others the server saw are left out)."""
        now = time.monotonic()
        out = []
        for task in tasks:
            record = self._tasks.get(task) or _TaskRecord()
            recent = [(at, ms) for at, ms in list(record.recent) if at >= now - self.window_s]
            span = min(self.window_s, now - self.started)
            if len(recent) == CAPACITY:  # the deque, not the window, limits what we see
                span = now - recent[0][0]
            times = np.array([ms for _, ms in recent], np.float64)
            p50, p95 = (float(np.percentile(times, 50)), float(np.percentile(times, 95))) if len(times) else (0.0, 0.0)
            out.append(TaskStats(task, record.images, record.failures, len(recent) / span if span > 0 else 0.0, p50, p95, len(recent)))
        return out
