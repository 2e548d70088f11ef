"""Shared fixtures: a model store exported once per session, real servers on loopback.

Nothing here is mocked: exports are real torch -> ONNX exports, servers are
real grpc.aio servers on 127.0.0.1 with ONNX Runtime sessions. The only
stand-ins are for hardware this machine lacks (a GPU), in test_providers.py.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from edgetl.settings import Settings

TINY = "tiny-timm"
_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="edgetl-tests-"))
TINY_WEIGHTS = _SESSION_ROOT / "tiny.safetensors"


def tiny_plugin_config(weights: Path = TINY_WEIGHTS) -> dict:
    """The generic timm plugin's table for a tiny timm model with weights from a local file."""
    return {
        "backbones": [
            {
                "name": TINY, "model": "test_efficientnet", "weights": str(weights), "input_size": [64, 64],
                "feature_maps": {"s2": 2, "s3": 3}, "lora_targets": [r"blocks\.\d+\.\d+\.conv_pwl?", "conv_head"],
            }
        ]
    }


def make_settings(data_dir: Path, **overrides) -> Settings:
    settings = Settings(data_dir=data_dir, port=0, metrics_port=0, terminal_port=0, plugins={"timm": tiny_plugin_config()})
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings


def builtin_export(session_store: Path):
    """The ModelStore the test session exported into, and the built-in backbone's export record in it."""
    from edgetl.runtime.store import ModelStore

    store = ModelStore(session_store)
    return store, next(r for r in (store.load(p) for p in (session_store / "exports").iterdir()) if r.manifest["backbone"] == "efficientnet_lite0")


def write_tiny_weights(path: Path = TINY_WEIGHTS, seed: int = 7) -> Path:
    """Random weights for timm's test_efficientnet, saved as a real safetensors file."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model("test_efficientnet", pretrained=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def session_store() -> Path:
    """A store with every registered backbone exported (once per test session)."""
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.runtime.store import ModelStore

    write_tiny_weights()
    data_dir = _SESSION_ROOT / "exports-data"
    settings = make_settings(data_dir)
    store = ModelStore(data_dir / "store")
    for backbone in BackboneRegistry.from_settings(settings):
        store.ensure(backbone, settings.to_dict())
    yield data_dir / "store"
    shutil.rmtree(_SESSION_ROOT, ignore_errors=True)


@pytest.fixture
def data_dir(tmp_path, session_store) -> Path:
    """A fresh data directory whose store holds the session's exports."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "store").symlink_to(session_store, target_is_directory=True)
    return d


class ServerThread:
    """A real EdgetlServer on loopback, its event loop in a background thread: the loop
    `edgetl serve` picks by default (uvloop where installed), so the tests run what ships."""

    def __init__(self, settings: Settings):
        from edgetl.server import eventloop
        from edgetl.server.app import EdgetlServer

        self.server = EdgetlServer(settings)
        _, factory = eventloop.loop_factory(settings.event_loop)
        self.loop = (factory or asyncio.new_event_loop)()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.address = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=300)
        self.channel = grpc.insecure_channel(self.address)

    def stop(self, grace: float = 1.0) -> None:
        if not self._thread.is_alive():
            return
        self.channel.close()
        asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture
def server_factory(data_dir):
    started = []

    def start(**overrides) -> ServerThread:
        s = ServerThread(make_settings(data_dir, **overrides))
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def server(server_factory) -> ServerThread:
    return server_factory()


@pytest.fixture(scope="session")
def chelsea_rgb() -> np.ndarray:
    from skimage import data

    return data.chelsea()


def encode(rgb: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return buf.tobytes()
