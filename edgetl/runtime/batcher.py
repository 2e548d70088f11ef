"""Micro-batching: one worker thread per backbone runs whatever has queued up, together.

At concurrency 1 a request runs alone as soon as it arrives; under load the
requests that arrived during the previous run go in one batch (up to
max_batch), which is what makes a GPU pay and costs nothing on a CPU. The
event loop only awaits (DESIGN.md: blocking work off the loop). The queue is
bounded: past max_queue a caller gets UNAVAILABLE at once instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from edgetl.errors import Unavailable
from edgetl.runtime.session import BackboneSession

log = logging.getLogger(__name__)


@dataclass
class _Job:
    tensor: np.ndarray
    outputs: tuple[str, ...]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BackboneResult:
    features: dict[str, np.ndarray]  # each [D...] for this one image
    queue_ms: float
    inference_ms: float
    batch_size: int


class MicroBatcher:
    """Feeds one BackboneSession from any number of concurrent callers."""

    def __init__(self, session: BackboneSession, max_batch: int = 8, max_queue: int = 256):
        self.session = session
        self.max_batch = max(1, max_batch)
        self.max_queue = max_queue
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=f"backbone-{session.name}", daemon=True)
        self._thread.start()

    async def infer(self, tensor: np.ndarray, outputs: tuple[str, ...]) -> BackboneResult:
        """Run one preprocessed image [3, H, W] through the backbone."""
        with self._lock:
            if self._pending >= self.max_queue:
                raise Unavailable(f"backbone {self.session.name} has {self._pending} images queued (limit {self.max_queue}); retry shortly")
            self._pending += 1
        loop = asyncio.get_running_loop()
        job = _Job(tensor, outputs, loop.create_future(), loop)
        self._queue.put(job)
        return await job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        # Callers that gave up (cancelled) are not computed.
        live = [job for job in batch if not job.future.cancelled()]
        try:
            if live:
                outputs = sorted({name for job in live for name in job.outputs})
                x = live[0].tensor[None] if len(live) == 1 else np.stack([job.tensor for job in live])
                values = self.session.run(x, outputs)
                elapsed_ms = (time.perf_counter() - started) * 1000
                for i, job in enumerate(live):
                    result = BackboneResult(
                        {name: values[name][i] for name in job.outputs},
                        queue_ms=(started - job.enqueued) * 1000,
                        inference_ms=elapsed_ms,
                        batch_size=len(live),
                    )
                    job.loop.call_soon_threadsafe(_resolve, job.future, result, None)
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            log.exception("backbone %s failed on a batch of %d", self.session.name, len(live))
            for job in live:
                job.loop.call_soon_threadsafe(_resolve, job.future, None, exc)
        finally:
            with self._lock:
                self._pending -= len(batch)


def _resolve(future: asyncio.Future, result, exc) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
