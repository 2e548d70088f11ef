"""A backbone session for serving (real ONNX Runtime sessions on the exported built-in backbone)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from edgetl.runtime.session import BackboneSession, shared_cpu_arena
from tests.conftest import builtin_export, make_settings


def test_sessions_share_one_cpu_arena_and_answer_as_a_session_with_its_own(session_store, tmp_path):
    store, record = builtin_export(session_store)
    settings = make_settings(tmp_path)
    first, second = (BackboneSession(record, settings, store.trt_cache) for _ in range(2))
    assert shared_cpu_arena() and first.shares_arena and second.shares_arena
    own = ort.InferenceSession(str(record.onnx_path), providers=["CPUExecutionProvider"])  # its own arena
    batch = np.random.default_rng(0).uniform(-1, 1, (3, 3, *first.input_size)).astype(np.float32)
    expected = own.run(["stride16", "logits"], {first.input_name: batch})
    # Interleaved and at two batch sizes, so the two sessions' runs reuse each other's freed blocks.
    for session in (first, second, first):
        for n in (3, 1):
            got = session.run(batch[:n], ["stride16", "logits"])
            assert np.allclose(got["stride16"], expected[0][:n], atol=1e-5)
            assert np.allclose(got["logits"], expected[1][:n], atol=1e-4)


def test_a_session_keeps_its_own_arena_when_ort_refuses_a_shared_one(session_store, tmp_path, monkeypatch):
    import edgetl.runtime.session as session_module

    store, record = builtin_export(session_store)
    monkeypatch.setattr(session_module, "_arena", None)

    def refuse(*args):
        raise RuntimeError("not in this build")

    monkeypatch.setattr(session_module.ort, "create_and_register_allocator", refuse)
    session = BackboneSession(record, make_settings(tmp_path), store.trt_cache)
    assert not session.shares_arena and not session_module.shared_cpu_arena()
    x = np.zeros((1, 3, *session.input_size), np.float32)
    assert session.run(x, ["logits"])["logits"].shape == (1, 1000)
