"""The model store: reuse, keys, verification, crash safety."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from edgetl.backbones.registry import BackboneRegistry
from edgetl.errors import ExportError
from edgetl.runtime.store import MANIFEST, ONNX_FILE, ModelStore
from tests.conftest import TINY, make_settings, tiny_plugin_config, write_tiny_weights


@pytest.fixture
def tiny_store(tmp_path, session_store):
    """A private copy of the tiny backbone's export."""
    settings = make_settings(tmp_path)
    backbone = BackboneRegistry.from_settings(settings).get(TINY)
    source = ModelStore(session_store).find(backbone)
    store = ModelStore(tmp_path / "store")
    shutil.copytree(source.path, store.exports / source.export_id)
    return store, backbone, settings


def test_a_second_start_reuses_the_export(tiny_store, monkeypatch):
    store, backbone, settings = tiny_store

    def no_export(*args, **kwargs):
        raise AssertionError("ensure() must not export again")

    monkeypatch.setattr(subprocess, "run", no_export)
    record = store.ensure(backbone, settings.to_dict())
    assert record.export_id.startswith(TINY + "-")


def test_new_weights_get_a_new_key(tmp_path, tiny_store):
    store, backbone, _ = tiny_store
    other = write_tiny_weights(tmp_path / "other.safetensors", seed=99)
    settings = make_settings(tmp_path)
    settings.plugins = {"timm": tiny_plugin_config(other)}
    changed = BackboneRegistry.from_settings(settings).get(TINY)
    assert store.export_id(changed) != store.export_id(backbone)
    assert store.find(changed) is None


def test_a_tampered_onnx_file_is_refused(tiny_store):
    store, backbone, _ = tiny_store
    record = store.find(backbone)
    with open(record.onnx_path, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ExportError, match="does not match its manifest"):
        store.find(backbone)


def test_a_missing_weights_file_is_a_clear_error(tmp_path):
    settings = make_settings(tmp_path)
    settings.plugins = {"timm": tiny_plugin_config(tmp_path / "nowhere.safetensors")}
    backbone = BackboneRegistry.from_settings(settings).get(TINY)
    with pytest.raises(Exception, match="nowhere.safetensors does not exist"):
        ModelStore(tmp_path / "store").ensure(backbone, settings.to_dict())


def test_a_crashed_export_leaves_nothing_under_a_real_key(tmp_path):
    """An export that dies half-way leaves only its temp dir, which find() ignores."""
    settings = make_settings(tmp_path)
    backbone = BackboneRegistry.from_settings(settings).get(TINY)
    store = ModelStore(tmp_path / "store")

    def crash(onnx_path):
        onnx_path.write_bytes(b"half an onnx file")
        raise KeyboardInterrupt  # as a kill would interrupt it

    with pytest.raises(KeyboardInterrupt):
        store.write(backbone, crash)
    assert store.find(backbone) is None
    assert not any(p.name.startswith(backbone.name) for p in store.exports.iterdir())


def test_export_failure_in_the_worker_is_one_clear_line(tmp_path):
    settings = make_settings(tmp_path)
    settings.plugins = {"timm": {"backbones": [{"name": "broken", "model": "no_such_timm_model", "weights": "random"}]}}
    backbone = BackboneRegistry.from_settings(settings).get("broken")
    with pytest.raises(ExportError, match="exporting backbone 'broken' failed: .*no_such_timm_model"):
        ModelStore(tmp_path / "store").ensure(backbone, settings.to_dict())


def test_unreadable_manifest_is_a_clear_error(tiny_store):
    store, backbone, _ = tiny_store
    record = store.find(backbone)
    (record.path / MANIFEST).write_text("{not json")
    with pytest.raises(ExportError, match="unreadable manifest"):
        store.find(backbone)
    assert (record.path / ONNX_FILE).exists()
