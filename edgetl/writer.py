"""A writer thread: work handed over from the serving path, done in order, off it.

The review capture and drift monitoring both decide on the event loop and
leave the disk (images, SQLite rows, the audit log) to one thread of their
own. This is that thread: a queue, a loop that applies `handle` to each item,
`flush` to wait for what was handed over (tests, shutdown), and `close` to do
what is queued and stop.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class WriterThread(Generic[T]):
    """Args:
    name: the thread's name (it shows in py-spy and thread dumps).
    handle: called with each item, in the order handed over.
    on_error: called with the item and the exception when `handle` raises; one bad
        item must not stop the thread.
    maxsize: items waiting at most (0: no bound); `offer` drops past it.
    """

    def __init__(self, name: str, handle: Callable[[T], None], on_error: Callable[[T, Exception], None], maxsize: int = 0):
        self._handle, self._on_error = handle, on_error
        self._queue: queue.Queue[T | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def offer(self, item: T) -> bool:
        """Hand `item` over without waiting; False (and nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    @property
    def waiting(self) -> int:
        """Items handed over and not yet taken by the thread."""
        return self._queue.qsize()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._handle(item)
            except Exception as exc:  # noqa: BLE001 - reported by on_error; the thread goes on
                self._on_error(item, exc)
            finally:
                self._queue.task_done()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over so far is done. True if it was."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 10.0) -> None:
        """Do what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)
