"""/metrics over real HTTP from a real server: the counters move with the traffic."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc
from tests.adapt_helpers import create_and_label, train
from tests.conftest import TINY, encode


def scrape(server) -> dict[tuple, float]:
    """(sample name, sorted label items) -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.server.metrics_port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def delta(before, after, name, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_request_counters_and_durations_move(server, chelsea_rgb):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    before = scrape(server)
    for _ in range(3):
        stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=encode(chelsea_rgb, ".jpg"))), timeout=30)
    for task, data in (("imagenet", b"garbage"), ("no-such-task", encode(chelsea_rgb, ".jpg"))):
        with pytest.raises(grpc.RpcError):
            stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=data)), timeout=30)
    after = scrape(server)

    assert delta(before, after, "edgetl_images_total", task="imagenet", adapter_version="builtin") == 3
    assert delta(before, after, "edgetl_rpcs_total", method="Classify", code="OK") == 3
    assert delta(before, after, "edgetl_image_failures_total", task="imagenet", code="INVALID_ARGUMENT") == 1
    assert delta(before, after, "edgetl_image_failures_total", task="(unknown)", code="NOT_FOUND") == 1  # no series per made-up name
    for histogram in ("edgetl_decode_seconds", "edgetl_queue_seconds", "edgetl_inference_seconds", "edgetl_request_seconds"):
        assert delta(before, after, f"{histogram}_count", task="imagenet", adapter_version="builtin") == 3
        assert delta(before, after, f"{histogram}_sum", task="imagenet", adapter_version="builtin") > 0
    assert after[("process_resident_memory_bytes", ())] > 50e6
    assert ("edgetl_images_in_flight", ()) in after


def test_training_jobs_and_swaps_are_counted(server):
    create_and_label(server, task="line7", backbone=TINY, per_class=6, size=64)
    before = scrape(server)
    train(server, task="line7", method="head")
    train(server, task="line7", method="head", force=True, seed=3)
    after = scrape(server)
    assert delta(before, after, "edgetl_training_jobs_total", task="line7", method="head", state="succeeded") == 2
    assert delta(before, after, "edgetl_adapter_swaps_total", task="line7", reason="trained") == 2
    assert after[("edgetl_active_adapter", (("adapter_version", "2"), ("task", "line7")))] == 1
    assert ("edgetl_active_adapter", (("adapter_version", "1"), ("task", "line7"))) not in after  # one series per task
    assert after[("edgetl_training_jobs_running", ())] == 0


def test_every_metric_is_documented_in_the_readme():
    from edgetl import metrics

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    names = {m._name for m in vars(metrics).values() if hasattr(m, "_name") and str(getattr(m, "_name", "")).startswith("edgetl_")}
    assert len(names) >= 12
    missing = sorted(n for n in names if not re.search(rf"`{n}(_total|_seconds|_info)?`", readme))
    assert not missing, f"metrics not documented in README.md: {missing}"


def test_a_kserve_batch_with_one_bad_image_counts_each_image_once(server, chelsea_rgb):
    """The request fails as a whole, but the metrics say exactly which images were and were not classified."""
    import numpy as np
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=server.address)
    images = triton.InferInput("images", [2], "BYTES")
    images.set_data_from_numpy(np.array([encode(chelsea_rgb, ".jpg"), b"garbage"], dtype=np.object_))
    before = scrape(server)
    with pytest.raises(InferenceServerException):
        client.infer("imagenet", [images])
    after = scrape(server)
    client.close()
    assert delta(before, after, "edgetl_images_total", task="imagenet", adapter_version="builtin") == 1
    assert delta(before, after, "edgetl_image_failures_total", task="imagenet", code="INVALID_ARGUMENT") == 1
    assert delta(before, after, "edgetl_rpcs_total", method="ModelInfer", code="INVALID_ARGUMENT") == 1
