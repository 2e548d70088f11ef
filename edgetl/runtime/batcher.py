"""Micro-batching without a batching thread: whoever finds the backbone idle runs what has queued.

Each request is decoded and preprocessed in a worker thread, which then
calls `MicroBatcher.run`. If the backbone is idle, that thread runs it at
once, together with any other images that are waiting (up to max_batch);
otherwise it waits, and the thread that finishes the current batch (or the
next one to find the backbone idle) takes its image along. At concurrency 1
this costs no thread hop at all; under load it batches, which is what makes
a GPU pay. Leader/follower, in the words of the patterns books.

`submit` and `collect` split `run` in two, so that one worker thread holding
several requests queues all their images before it waits for any of them: a
one-core server, which has one worker, batches too (edgetl.runtime.workers).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from edgetl import metrics
from edgetl.errors import DeadlineExceeded
from edgetl.runtime.session import BackboneSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneResult:
    features: dict[str, np.ndarray]  # each [D...] for this one image
    queue_ms: float
    inference_ms: float
    batch_size: int


@dataclass
class _Slot:
    tensor: np.ndarray
    outputs: tuple[str, ...]
    deadline: float | None = None  # time.monotonic() after which nobody waits for the answer
    enqueued: float = field(default_factory=time.perf_counter)
    result: BackboneResult | None = None
    error: BaseException | None = None


#: Batch sizes when `[runtime] max_batch` is 0. On a GPU a batch amortises the
#: launch and transfer; on the CPU it depends on the CPU: EfficientNet-Lite0 at
#: batch 8 runs 8-12 % slower per image than at 1-4 on an Intel Xeon VM, and on
#: an AMD EPYC VM batch 2-4 runs 5 % faster per image than batch 1 and 8 gives
#: most of that back (benchmarks/batch_size.py; BENCHMARKS.md, "Against the
#: servers a plant could pick instead"). 4 is right on both.
GPU_MAX_BATCH = 8
CPU_MAX_BATCH = 4
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


#: Worker threads when `[runtime] worker_threads` is 0. On a GPU several
#: workers decode in parallel while the backbone runs, so it gets this many. On
#: the CPU a worker beyond the cores contends for them and the GIL: on a
#: one-core Xeon server one worker answered 3-4 % faster than four under load,
#: ahead of KServe where four were behind it, and on the AMD VM two workers were
#: no faster than one (BENCHMARKS.md, "Against the servers a plant could pick
#: instead"). A one-core server's one worker still batches: it takes the
#: requests waiting together (`gather_for`), queues all their images, then
#: runs them as one batch (WorkerThreads.run_staged): +3-7 % under load there.
GPU_WORKERS = 4
MAX_CPU_WORKERS = 4


def worker_threads_for(configured: int, providers: list[str], cpus: int | None = None) -> int:
    """The engine's worker threads: `configured`, or by the first backbone's provider when that is 0
    (GPU_WORKERS on a GPU; on the CPU one per core this process may use, at most MAX_CPU_WORKERS)."""
    if configured > 0:
        return configured
    if providers and providers[0] in _GPU_PROVIDERS:
        return GPU_WORKERS
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_CPU_WORKERS, cpus))


def max_batch_for(configured: int, providers: list[str]) -> int:
    """The batch size a session gets: `configured`, or by its provider when that is 0."""
    if configured > 0:
        return configured
    return GPU_MAX_BATCH if providers and providers[0] in _GPU_PROVIDERS else CPU_MAX_BATCH


#: Requests one worker takes together on the CPU (WorkerThreads' `gather`).
#: Two, not the batch size: on the AMD VM a batch of 2 already costs as little
#: per image as 4 (9.55 against 9.52 ms), and a worker that takes every
#: request waiting leaves the core idle while the next ones arrive (its
#: callers all wait for the same batch); gathering two keeps the next request
#: arriving while a batch runs. BENCHMARKS.md, "Against the servers a plant
#: could pick instead". On a GPU a worker takes a whole batch.
CPU_GATHER = 2


def gather_for(max_batch: int, providers: list[str]) -> int:
    """How many waiting requests one worker takes at once: the batch size on a GPU, at most CPU_GATHER on the CPU."""
    if providers and providers[0] in _GPU_PROVIDERS:
        return max_batch
    return max(1, min(CPU_GATHER, max_batch))


class MicroBatcher:
    """Feeds one BackboneSession from any number of worker threads."""

    def __init__(self, session: BackboneSession, max_batch: int = 0, label: str | None = None):
        """`max_batch`: 0 picks by the session's provider (`max_batch_for`).
        `label`: the name its runs are counted under in /metrics (default the backbone's name)."""
        self.session = session
        self.max_batch = max_batch_for(max_batch, list(getattr(session, "providers", [])))
        self._cond = threading.Condition()
        self._waiting: list[_Slot] = []
        self._busy = False
        self._runs = metrics.BACKBONE_RUNS.labels(label or session.name)
        self._images = metrics.BACKBONE_IMAGES.labels(label or session.name)

    def run(self, tensor: np.ndarray, outputs: tuple[str, ...], deadline: float | None = None) -> BackboneResult:
        """Run one preprocessed image [3, H, W]; blocks the calling (worker) thread.

        An image whose `deadline` (time.monotonic()) has passed when its batch
        starts is dropped with DeadlineExceeded instead of being computed.
        """
        return self.run_many([tensor], outputs, deadline)[0]

    def run_many(self, tensors: list[np.ndarray], outputs: tuple[str, ...], deadline: float | None = None) -> list[BackboneResult]:
        """Run several images (one part's views) queued together, so they share batches; blocks until all are done."""
        return self.collect(self.submit(tensors, outputs, deadline))

    def submit(self, tensors: list[np.ndarray], outputs: tuple[str, ...], deadline: float | None = None) -> list[_Slot]:
        """Queue images for the backbone without waiting; `collect` the returned slots for their results.

        A worker that has several requests in hand submits them all before it
        collects any, so one worker thread can still batch (WorkerThreads' staged jobs).
        """
        slots = [_Slot(tensor, outputs, deadline) for tensor in tensors]
        with self._cond:
            self._waiting.extend(slots)
        return slots

    @staticmethod
    def done(slots: list[_Slot]) -> bool:
        """Whether every submitted image has its result (or error): `collect` on them would return at once."""
        return all(slot.result is not None or slot.error is not None for slot in slots)

    def collect(self, slots: list[_Slot]) -> list[BackboneResult]:
        """The results of submitted images; blocks, running batches itself whenever the backbone is idle."""
        with self._cond:
            while any(slot.result is None and slot.error is None for slot in slots):
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        for slot in slots:
            if slot.error is not None:
                raise slot.error
        return [slot.result for slot in slots]

    def _run(self, batch: list[_Slot]) -> None:
        now = time.monotonic()
        for slot in batch:
            if slot.deadline is not None and now > slot.deadline:
                slot.error = DeadlineExceeded("the request's deadline passed while it waited for the backbone; it was not computed")
        batch = [slot for slot in batch if slot.error is None]
        if not batch:
            return
        started = time.perf_counter()
        try:
            outputs = sorted({name for slot in batch for name in slot.outputs})
            x = batch[0].tensor[None] if len(batch) == 1 else np.stack([slot.tensor for slot in batch])
            values = self.session.run(x, outputs)
        except Exception as exc:  # noqa: BLE001 - handed to every caller in the batch
            log.exception("backbone %s failed on a batch of %d", self.session.name, len(batch))
            for slot in batch:
                slot.error = exc
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._runs.inc()
        self._images.inc(len(batch))
        for i, slot in enumerate(batch):
            slot.result = BackboneResult(
                {name: values[name][i] for name in slot.outputs},
                queue_ms=(started - slot.enqueued) * 1000,
                inference_ms=elapsed_ms,
                batch_size=len(batch),
            )
