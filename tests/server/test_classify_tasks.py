"""One image, several tasks (ClassifyTasks) in a real server: an anomaly task and a defect classifier on
the same backbone are answered with one backbone run, each answer the same as its own Classify call and
carrying its own adapter version; a task on another backbone costs one more run, not one per task; and
every wrong way of asking gets a clear error while the server goes on serving."""

from __future__ import annotations

import json
import re
import urllib.request

import grpc
import numpy as np
import pytest

from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc
from edgetl.synthetic import make_images
from tests.adapt_helpers import create_and_label, png, train
from tests.conftest import TINY
from tests.server.test_anomaly import _create, _label_good


def _backbone_runs(server) -> dict[str, float]:
    """edgetl_backbone_runs_total per backbone, from the server's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.server.metrics_port}/metrics", timeout=10).read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r'^edgetl_backbone_runs_total\{backbone="([^"]+)"\} (\S+)$', text, re.MULTILINE)}


def _ask(server, img, tasks, **fields):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    request = inference_pb2.ClassifyTasksRequest(tasks=tasks, image=image_pb2.Image(encoded=png(img)), **fields)
    return stub.ClassifyTasks(request, timeout=30)


def _classify(server, img, task):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    return stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=png(img))), timeout=30)


@pytest.fixture
def station(server):
    """An anomaly task and a defect classifier, both on the tiny backbone, each with an active adapter."""
    _create(server)
    _label_good(server, 16)
    _, job = train(server, task="surface", method="anomaly")
    assert job.activated, job.gate
    create_and_label(server, task="parts", backbone=TINY, per_class=8)
    _, job = train(server, task="parts", method="head")
    assert job.activated, job.gate
    return server


def test_an_anomaly_task_and_a_classifier_take_one_backbone_run(station):
    server = station
    img = next(make_images("brick", ("pit",), 1, 96, seed=5))[1]
    before = _backbone_runs(server)
    r = _ask(server, img, ["parts", "surface"], request_id="frame-9", anomaly_map=True)
    after = _backbone_runs(server)
    assert r.backbone_runs == 1 and r.request_id == "frame-9"
    assert after[TINY] - before.get(TINY, 0) == 1  # the server's own count, not the response's word
    assert [a.task for a in r.answers] == ["parts", "surface"]
    parts, surface = r.answers
    assert parts.adapter_version == "1" and surface.adapter_version == "1" and not parts.HasField("anomaly")
    assert surface.anomaly.threshold > 0 and surface.anomaly.map_png  # the map, as asked for
    # The same answers as asking each task on its own.
    alone = {t: _classify(server, img, t) for t in ("parts", "surface")}
    np.testing.assert_allclose(parts.scores, alone["parts"].scores, atol=1e-5)
    assert parts.label == alone["parts"].label
    assert surface.anomaly.score == pytest.approx(alone["surface"].anomaly.score, rel=1e-5)


def test_a_task_on_another_backbone_costs_one_more_run_and_versions_stay_apart(station):
    server = station
    _label_good(server, 4, seed=3)
    _, job = train(server, task="surface", method="anomaly")  # version 2 for the anomaly task only
    assert job.activated, job.gate
    img = next(make_images("brick", ("ok",), 1, 96, seed=6))[1]
    before = _backbone_runs(server)
    r = _ask(server, img, ["imagenet", "surface", "parts"])
    after = _backbone_runs(server)
    assert r.backbone_runs == 2  # the tiny backbone once for two tasks, the built-in backbone once
    assert sum(after.values()) - sum(before.values()) == 2
    assert [(a.task, a.adapter_version) for a in r.answers] == [("imagenet", "builtin"), ("surface", "2"), ("parts", "1")]
    assert r.answers[0].label == _classify(server, img, "imagenet").label


def test_bad_requests_get_clear_errors_and_nothing_runs(station):
    server = station
    img = next(make_images("brick", ("ok",), 1, 96, seed=7))[1]
    create_and_label(server, task="untrained", backbone=TINY, per_class=1)
    cases = [
        ([], grpc.StatusCode.INVALID_ARGUMENT, "names no task"),
        (["parts", "parts"], grpc.StatusCode.INVALID_ARGUMENT, "'parts' is named more than once"),
        (["parts", "no-such-task"], grpc.StatusCode.NOT_FOUND, "unknown task 'no-such-task'"),
        (["surface", "untrained"], grpc.StatusCode.FAILED_PRECONDITION, "'untrained' has no active adapter"),
        ([f"t{i}" for i in range(17)], grpc.StatusCode.INVALID_ARGUMENT, "at most 16"),
    ]
    before = _backbone_runs(server)
    for tasks, code, words in cases:
        with pytest.raises(grpc.RpcError) as err:
            _ask(server, img, tasks)
        assert err.value.code() == code and words in err.value.details(), (tasks, err.value.details())
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.ClassifyTasks(inference_pb2.ClassifyTasksRequest(tasks=["parts"], image=image_pb2.Image(encoded=b"not an image")), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _backbone_runs(server) == before  # nothing was computed for a refused request
    assert len(_ask(server, img, ["surface", "parts"]).answers) == 2  # and the server goes on


def test_the_cli_asks_several_tasks_in_one_call(station, tmp_path):
    """`edgetl predict --task parts,surface`: one JSON object per task and file, the backbone runs they took, one heatmap per anomaly task."""
    from tests.test_cli import run

    image = tmp_path / "part.png"
    image.write_bytes(png(next(make_images("brick", ("burn",), 1, 96, seed=8))[1]))
    result = run("predict", "--server", station.address, "--task", "parts,surface", "--json", "--map", str(tmp_path / "maps"), str(image))
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(a["task"], a["adapter_version"], a["backbone_runs"]) for a in answers] == [("parts", "1", 1), ("surface", "1", 1)]
    assert "anomaly" in answers[1] and (tmp_path / "maps" / "part.png.surface.anomaly.png").stat().st_size > 0
    twice = run("predict", "--server", station.address, "--task", "parts,parts", str(image))
    assert twice.returncode == 1 and "named more than once" in twice.stderr and "Traceback" not in twice.stderr
