"""Worker threads the event loop hands blocking work to: one queue in, one loop callback out.

`loop.run_in_executor` makes two futures per call (a concurrent one and the
asyncio one wrapping it), each with its own lock, callbacks and state
copying; on a request that costs ~400 µs of serving around 6 ms of model,
that hop was the largest piece we could take out (BENCHMARKS.md, "the serving
path"). Here a call is one asyncio future, one `SimpleQueue.put`, and one
`call_soon_threadsafe` back: the loop never blocks, and work whose caller has
given up (its future cancelled: a deadline, a dropped stream) before a worker
takes it is skipped, as an executor skips a cancelled future.

Staged work (`run_staged`) is a generator function whose steps end where it
would wait: a classify request decodes its image and queues it for the
backbone, yields, then collects the backbone's answer and runs its head. A
worker that takes a staged job also takes the staged jobs already waiting
behind it (up to `gather`) and steps them in turn, so every image is queued
before anyone waits and the backbone runs them as one batch. That is how a
one-core server, which has one worker thread, batches under load; with one
request at a time there is nothing behind it, and nothing changes.

The answers of one pass over the group go back to the loop together, in one
`call_soon_threadsafe`: the loop wakes once for the group, not once per
request, and the worker is interrupted once. At four callers on one core
that took the loop from 4.9 to 3.6 wake-ups a request (BENCHMARKS.md, "Against
the servers a plant could pick instead"). An answer is never held while
another job waits: a step may yield a callable that says whether the job's
next step can run without waiting (its images have been through the
backbone). Before stepping a job that would wait, or that gave no such
callable, the worker sends the answers it holds.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any


#: "No job taken ahead" (None on the queue already means: stop).
_NOTHING = object()


@dataclass(slots=True)
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    fn: Callable[..., Any]
    args: tuple
    staged: bool


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    """On the loop: hand the worker's result to the caller, unless it has stopped waiting."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _settle_all(answers: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    """On the loop: `_settle` each of several answers a worker sent together."""
    for future, result, error in answers:
        _settle(future, result, error)


def _answer(job: _Job, result: Any, error: BaseException | None) -> None:
    """From a worker: one job's answer, to its caller's loop."""
    _answer_all([(job, result, error)])


def _answer_all(answers: list[tuple[_Job, Any, BaseException | None]]) -> None:
    """From a worker: several answers at once, one `call_soon_threadsafe` per loop (a server has one)."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for job, result, error in answers:
        by_loop.setdefault(job.loop, []).append((job.future, result, error))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, settled)
        except RuntimeError:  # the loop has closed (the server stopped): nobody is waiting
            pass


class WorkerThreads:
    """`threads` daemon threads running `await workers.run(fn, *args)` calls in arrival order.

    `gather`: how many staged jobs one thread takes at once (1: one at a time).
    """

    def __init__(self, threads: int, name: str, gather: int = 1):
        self.gather = max(1, gather)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, name=f"{name}_{i}", daemon=True) for i in range(max(1, threads))]
        for thread in self._threads:
            thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """A future for `fn(*args)` computed in a worker thread; call from the event loop."""
        return self._put(fn, args, staged=False)

    def run_staged(self, fn: Callable[..., Generator[Callable[[], bool] | None, None, Any]], *args: Any) -> asyncio.Future:
        """A future for the value `fn(*args)` returns, a generator stepped in a worker thread alongside the
        staged jobs waiting with it (each `yield` is a point where it would wait; it may yield a callable
        that says whether its next step can run without waiting); call from the event loop."""
        return self._put(fn, args, staged=True)

    def _put(self, fn: Callable[..., Any], args: tuple, staged: bool) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put(_Job(loop, future, fn, args, staged))
        return future

    def _serve(self) -> None:
        after = _NOTHING  # a job taken while gathering that does not belong in the group: it runs next
        while True:
            job = self._jobs.get() if after is _NOTHING else after
            after = _NOTHING
            if job is None:  # shutdown
                return
            if not job.staged:
                self._run_plain(job)
                continue
            group = [job]
            while len(group) < self.gather:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None or not more.staged:
                    after = more
                    break
                group.append(more)
            self._run_staged(group)
            del job, group  # drop references before blocking on the queue again

    @staticmethod
    def _run_plain(job: _Job) -> None:
        # Read across threads on purpose: a plain attribute read; at worst the work runs and its answer is dropped.
        if job.future.cancelled():
            return
        try:
            result, error = job.fn(*job.args), None
        except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
            result, error = None, exc
        _answer(job, result, error)

    @staticmethod
    def _run_staged(group: list[_Job]) -> None:
        """Step every job's generator in turn until each has returned; a pass's answers go back together,
        and none waits behind a step that would wait (see the module's docstring)."""
        active = []
        for job in group:
            if job.future.cancelled():
                continue
            try:
                active.append((job, job.fn(*job.args), None))
            except Exception as exc:  # noqa: BLE001 - a generator function raises only if it is not one
                _answer(job, None, exc)
        while active:
            stepping, active, answers = active, [], []
            for job, steps, ready in stepping:
                if answers and not (ready is not None and ready()):
                    _answer_all(answers)  # this step may wait: the finished ones do not wait with it
                    answers = []
                try:
                    hint = next(steps)
                except StopIteration as done:
                    answers.append((job, done.value, None))
                except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
                    answers.append((job, None, exc))
                else:
                    active.append((job, steps, hint if callable(hint) else None))
            if answers:
                _answer_all(answers)

    def shutdown(self) -> None:
        """Cancel the work no thread has taken and stop the threads (no join: a worker may be inside a model run)."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                try:
                    job.loop.call_soon_threadsafe(job.future.cancel)
                except RuntimeError:  # the loop has closed
                    pass
        for _ in self._threads:
            self._jobs.put(None)
