"""Worker threads the event loop hands blocking work to: one queue in, one loop callback out.

`loop.run_in_executor` makes two futures per call (a concurrent one and the
asyncio one wrapping it), each with its own lock, callbacks and state
copying; on a request that costs ~400 µs of serving around 6 ms of model,
that hop was the largest piece we could take out (BENCHMARKS.md, "the serving
path"). Here a call is one asyncio future, one `SimpleQueue.put`, and one
`call_soon_threadsafe` back: the loop never blocks, and work whose caller has
given up (its future cancelled: a deadline, a dropped stream) before a worker
takes it is skipped, as an executor skips a cancelled future.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    """On the loop: hand the worker's result to the caller, unless it has stopped waiting."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class WorkerThreads:
    """`threads` daemon threads running `await workers.run(fn, *args)` calls in arrival order."""

    def __init__(self, threads: int, name: str):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, name=f"{name}_{i}", daemon=True) for i in range(max(1, threads))]
        for thread in self._threads:
            thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """A future for `fn(*args)` computed in a worker thread; call from the event loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        return future

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, future, fn, args = job
            # Read across threads on purpose: a plain attribute read; at worst the work runs and its answer is dropped.
            if future.cancelled():
                continue
            try:
                result, error = fn(*args), None
            except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop has closed (the server stopped): nobody is waiting
                pass
            del job, future, result, error  # drop references before blocking on the queue again

    def shutdown(self) -> None:
        """Cancel the work no thread has taken and stop the threads (no join: a worker may be inside a model run)."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                loop, future = job[0], job[1]
                try:
                    loop.call_soon_threadsafe(future.cancel)
                except RuntimeError:  # the loop has closed
                    pass
        for _ in self._threads:
            self._jobs.put(None)
