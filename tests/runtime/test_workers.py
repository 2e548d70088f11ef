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


def test_staged_jobs_waiting_together_are_stepped_in_turn_and_each_gets_its_own_answer():
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


def _counting_wakeups(loop: asyncio.AbstractEventLoop) -> list:
    """Count the worker threads' hand-backs to `loop` (each call_soon_threadsafe wakes it)."""
    calls = []
    original = loop.call_soon_threadsafe

    def counted(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    loop.call_soon_threadsafe = counted
    return calls


@pytest.mark.parametrize("ready", [True, None])
def test_a_pass_s_answers_reach_the_loop_together_when_nothing_waits(ready):
    """Three jobs whose images shared a batch (ready): one hand-back for the three; with no hint, one each."""
    workers = WorkerThreads(1, "test", gather=3)

    def staged(name):
        yield (lambda: True) if ready else None
        return name.upper()

    async def main():
        busy, gate = _hold(workers)
        jobs = [workers.run_staged(staged, n) for n in "abc"]
        calls = _counting_wakeups(asyncio.get_running_loop())
        gate.set()
        await busy
        assert await asyncio.gather(*jobs) == ["A", "B", "C"]
        return len(calls) - 1  # the held job's own answer

    assert asyncio.run(main()) == (1 if ready else 3)
    workers.shutdown()


def test_a_finished_answer_is_not_held_while_another_job_waits():
    """b's next step would wait (its hint says not ready): a's answer goes back before b's step runs."""
    workers = WorkerThreads(1, "test", gather=2)
    a_answered = threading.Event()
    seen = []

    def staged(name):
        yield lambda: name == "a"
        if name == "b":
            seen.append(a_answered.wait(2))  # False if a's answer were held until b is done
        return name

    async def main():
        busy, gate = _hold(workers)
        jobs = [workers.run_staged(staged, n) for n in "ab"]
        jobs[0].add_done_callback(lambda _: a_answered.set())
        gate.set()
        await busy
        assert await asyncio.gather(*jobs) == ["a", "b"]

    asyncio.run(main())
    workers.shutdown()
    assert seen == [True]
