"""The event loop the server runs on: uvloop where it is installed, else asyncio's own.

Every call is a few hundred microseconds of Python around the model, and a
good part of it is the event loop's: waking for gRPC's completion events,
running callbacks, the worker thread handing its answer back
(`call_soon_threadsafe`). uvloop (libuv, in C) does that work in less time:
a bare grpc.aio server with edgetl's interceptor and thread hop spent 171 µs
of one core per call under uvloop against 218 µs under asyncio's loop
(BENCHMARKS.md, "Against the servers a plant could pick instead"). KServe's
model server runs on uvloop by default too. grpc.aio runs on any asyncio
loop; uvloop has no Windows build, where `auto` falls back.

`[runtime] event_loop`: "auto" (uvloop if importable), "uvloop" (required:
a clear error if missing) or "asyncio" (the standard loop, for debugging or
a platform uvloop misbehaves on).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from edgetl.errors import ConfigError

T = TypeVar("T")

#: The values `[runtime] event_loop` accepts.
EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str = "auto") -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The loop `choice` resolves to here: (its name, a factory for asyncio.Runner; None: asyncio's default)."""
    if choice not in EVENT_LOOPS:
        raise ConfigError(f"event_loop = {choice!r}: choose one of {', '.join(EVENT_LOOPS)}")
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise ConfigError(
                f"event_loop = 'uvloop' but uvloop cannot be imported ({exc}); "
                "pip install uvloop, or set [runtime] event_loop = \"auto\""
            ) from exc
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """"uvloop" or "asyncio": the kind of `loop` (default: the running one)."""
    return type(loop or asyncio.get_running_loop()).__module__.split(".")[0]


def run(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """`asyncio.run(main)` on the loop `choice` names (see the module's docstring)."""
    try:
        _, factory = loop_factory(choice)
    except ConfigError:
        main.close()  # never started: no "coroutine was never awaited" warning on top of the error
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
