"""The engine's worker threads (edgetl.runtime.workers): results, errors, and work nobody waits for any more."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edgetl.runtime.workers import WorkerThreads


def test_work_runs_off_the_loop_and_its_result_or_error_comes_back():
    workers = WorkerThreads(2, "test")

    async def main():
        loop_thread = threading.get_ident()
        assert await workers.run(lambda a, b: (a + b, threading.get_ident()), 2, 3) != (5, loop_thread)
        value, thread = await workers.run(lambda: (7, threading.current_thread().name))
        assert value == 7 and thread.startswith("test_")
        with pytest.raises(ValueError, match="broken image"):
            await workers.run(lambda: (_ for _ in ()).throw(ValueError("broken image")))
        # Many at once, each answer to its own caller.
        assert await asyncio.gather(*(workers.run(lambda i=i: i * i) for i in range(50))) == [i * i for i in range(50)]

    asyncio.run(main())
    workers.shutdown()


def test_work_whose_caller_gave_up_before_it_started_is_skipped():
    workers = WorkerThreads(1, "test")
    ran = []
    gate = threading.Event()

    async def main():
        busy = workers.run(gate.wait, 5)  # the only thread is held here
        queued = workers.run(ran.append, "queued")
        queued.cancel()  # the caller's deadline passed while it waited
        gate.set()
        assert await busy is True
        assert await workers.run(ran.append, "next") is None  # the thread went on to the next job

    asyncio.run(main())
    workers.shutdown()
    assert ran == ["next"]


def test_shutdown_cancels_what_no_thread_has_taken():
    workers = WorkerThreads(1, "test")
    gate, started = threading.Event(), threading.Event()

    def hold():
        started.set()
        return gate.wait(5)

    async def main():
        busy = workers.run(hold)
        while not started.is_set():  # the thread has taken it: shutdown cannot cancel it any more
            await asyncio.sleep(0.001)
        waiting = workers.run(lambda: "never")
        workers.shutdown()
        gate.set()
        assert await busy is True
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())


def _hold(workers: WorkerThreads) -> tuple[asyncio.Future, threading.Event]:
    """Occupy a worker with a plain job until the returned gate is set (call on the loop)."""
    gate, started = threading.Event(), threading.Event()

    def hold():
        started.set()
        return gate.wait(5)

    busy = workers.run(hold)
    assert started.wait(5)
    return busy, gate


def test_staged_jobs_waiting_together_are_stepped_in_turn_and_each_answered_alone():
    workers = WorkerThreads(1, "test", gather=3)
    steps = []

    def staged(name, fail=False):
        steps.append(f"queue {name}")
        yield
        steps.append(f"collect {name}")
        if fail:
            raise ValueError(f"{name} is broken")
        return name.upper()

    async def main():
        busy, gate = _hold(workers)
        jobs = [workers.run_staged(staged, n, n == "b") for n in "abcd"]
        dropped = workers.run_staged(staged, "never")
        dropped.cancel()  # its caller gave up before a worker took it
        plain = workers.run(steps.append, "plain")
        gate.set()
        assert await busy is True
        a, b, c, d = await asyncio.gather(*jobs, return_exceptions=True)
        assert (a, c, d) == ("A", "C", "D") and isinstance(b, ValueError) and "b is broken" in str(b)
        await plain

    asyncio.run(main())
    workers.shutdown()
    # Three at once (gather=3): each queues before any collects; then the fourth, alone; the
    # cancelled one never starts; the plain job taken while gathering runs after the staged ones.
    assert steps == ["queue a", "queue b", "queue c", "collect a", "collect b", "collect c", "queue d", "collect d", "plain"]


def test_without_gathering_staged_jobs_run_one_by_one():
    workers = WorkerThreads(1, "test")
    steps = []

    def staged(name):
        steps.append(f"queue {name}")
        yield
        steps.append(f"collect {name}")
        return name

    async def main():
        busy, gate = _hold(workers)
        jobs = [workers.run_staged(staged, n) for n in "ab"]
        gate.set()
        await busy
        assert await asyncio.gather(*jobs) == ["a", "b"]

    asyncio.run(main())
    workers.shutdown()
    assert steps == ["queue a", "collect a", "queue b", "collect b"]
