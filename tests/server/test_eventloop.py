"""The server's event loop: uvloop by default where it is installed, asyncio's on request, a clear error when uvloop is required and missing."""

from __future__ import annotations

import asyncio
import sys

import pytest

from edgetl.errors import ConfigError
from edgetl.server import eventloop


async def _loop_module() -> str:
    await asyncio.sleep(0)  # a real turn of the loop
    return eventloop.loop_name()


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")
def test_auto_runs_on_uvloop_where_installed():
    assert eventloop.loop_factory("auto")[0] == "uvloop"
    assert eventloop.run(_loop_module()) == "uvloop"
    assert eventloop.run(_loop_module(), "uvloop") == "uvloop"


def test_asyncio_runs_on_the_standard_loop():
    assert eventloop.run(_loop_module(), "asyncio") == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert eventloop.run(_loop_module(), "auto") == "asyncio"
    with pytest.raises(ConfigError, match="uvloop cannot be imported.*pip install uvloop"):
        eventloop.run(_loop_module(), "uvloop")


def test_an_unknown_loop_is_refused():
    with pytest.raises(ConfigError, match="choose one of auto, uvloop, asyncio"):
        eventloop.loop_factory("trio")


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")
def test_the_test_servers_run_on_the_loop_that_ships(server):
    # tests.conftest.ServerThread takes the loop `edgetl serve` takes, so every integration test runs on it.
    assert eventloop.loop_name(server.loop) == "uvloop"
