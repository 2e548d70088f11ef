"""The eight views of a part and the batcher that runs a part's views together (real ONNX Runtime session)."""

from __future__ import annotations

import numpy as np
import pytest

from edgetl.errors import InvalidInput
from edgetl.runtime.batcher import MicroBatcher
from edgetl.runtime.session import BackboneSession
from edgetl.runtime.views import SERVE_VIEWS, check_serve_views, stack_views, views_of
from tests.conftest import builtin_export, make_settings


def test_the_views_are_the_eight_flips_and_turns_and_nest():
    x = np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4)
    views = views_of(x, 8)
    assert views[0] is x and all(v.flags.c_contiguous and v.shape == x.shape for v in views)
    assert len({v.tobytes() for v in views}) == 8  # all different on an asymmetric image
    assert np.array_equal(views[1], x[:, :, ::-1]) and np.array_equal(views[4], np.rot90(x, 1, (1, 2)))
    assert all(np.array_equal(a, b) for a, b in zip(views_of(x, 4), views[:4]))  # fewer views are the first ones


@pytest.mark.parametrize("value", [0, 3, 5, 9, "two", None])
def test_only_1_2_4_or_8_serving_views(value):
    with pytest.raises(InvalidInput, match="serve_views must be one of 1, 2, 4, 8"):
        check_serve_views(value)
    assert [check_serve_views(v) for v in SERVE_VIEWS] == list(SERVE_VIEWS)


def test_a_parts_views_share_batches_and_match_one_by_one(session_store, tmp_path):
    store, record = builtin_export(session_store)
    session = BackboneSession(record, make_settings(tmp_path), store.trt_cache)
    batcher = MicroBatcher(session, max_batch=4)
    x = np.random.default_rng(0).uniform(-1, 1, (3, *session.input_size)).astype(np.float32)
    together = batcher.run_many(views_of(x, 8), ("stride32",))
    assert [r.batch_size for r in together] == [4] * 8  # queued at once: two batches of four
    alone = [batcher.run(v, ("stride32",)) for v in views_of(x, 8)]
    assert all(r.batch_size == 1 for r in alone)
    for a, b in zip(together, alone):
        assert np.allclose(a.features["stride32"], b.features["stride32"], atol=1e-4)
    stacked = stack_views(together, 2)
    assert stacked["stride32"].shape == (2, *together[0].features["stride32"].shape)


def test_done_says_whether_collecting_would_run_the_backbone(session_store, tmp_path):
    """Two parts of three views each, batches of four: collecting the first runs one batch (its three views
    and one of the second's); the second is not done until a second batch (the worker's hint, workers.py)."""
    store, record = builtin_export(session_store)
    batcher = MicroBatcher(BackboneSession(record, make_settings(tmp_path), store.trt_cache), max_batch=4)
    x = np.random.default_rng(1).uniform(-1, 1, (3, *batcher.session.input_size)).astype(np.float32)
    first = batcher.submit(views_of(x, 4)[:3], ("stride32",))
    second = batcher.submit(views_of(x, 4)[1:], ("stride32",))
    assert not MicroBatcher.done(first) and not MicroBatcher.done(second)
    assert [r.batch_size for r in batcher.collect(first)] == [4, 4, 4]
    assert MicroBatcher.done(first) and not MicroBatcher.done(second)
    assert [r.batch_size for r in batcher.collect(second)] == [4, 2, 2]
    assert MicroBatcher.done(second)
