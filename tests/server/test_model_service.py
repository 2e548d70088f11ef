"""ModelService through a real server: backbones, tasks, and what an untrained task answers."""

from __future__ import annotations

import grpc
import pytest

from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc
from tests.conftest import TINY, encode


def stub(server):
    return model_pb2_grpc.ModelServiceStub(server.channel)


def test_list_backbones_shows_every_registered_backbone(server):
    response = stub(server).ListBackbones(model_pb2.ListBackbonesRequest(), timeout=10)
    by_name = {b.name: b for b in response.backbones}
    assert set(by_name) == {"efficientnet_lite0", TINY}
    lite0 = by_name["efficientnet_lite0"]
    assert lite0.loaded and lite0.plugin == "efficientnet_lite0" and lite0.providers[0] == "CPUExecutionProvider"
    assert (lite0.input_height, lite0.input_width) == (224, 224) and list(lite0.mean) == [0.5] * 3
    outputs = {o.name: list(o.shape) for o in lite0.outputs}
    assert outputs["pooled"] == [1280] and outputs["logits"] == [1000]
    assert outputs["stride8"] == [40, 28, 28] and outputs["stride16"] == [112, 14, 14]
    assert len(lite0.onnx_sha256) == 64 and lite0.lora_targets
    assert not by_name[TINY].loaded and by_name[TINY].plugin == "timm"


def test_builtin_imagenet_task(server):
    task = stub(server).GetTask(model_pb2.GetTaskRequest(name="imagenet"), timeout=10)
    assert task.builtin and task.active_adapter_version == "builtin"
    assert len(task.class_names) == 1000 and task.class_names[285] == "Egyptian cat"


def test_created_task_is_listed_and_answers_failed_precondition_until_trained(server, chelsea_rgb):
    created = stub(server).CreateTask(model_pb2.CreateTaskRequest(name="weld-3", class_names=["ok", "crack", "porosity"]), timeout=10)
    assert created.backbone == "efficientnet_lite0" and list(created.class_names) == ["ok", "crack", "porosity"]
    names = [t.name for t in stub(server).ListTasks(model_pb2.ListTasksRequest(), timeout=10).tasks]
    assert names == ["imagenet", "weld-3"]
    inference = inference_pb2_grpc.InferenceServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as info:
        inference.Classify(inference_pb2.ClassifyRequest(task="weld-3", image=image_pb2.Image(encoded=encode(chelsea_rgb))), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no active adapter yet" in info.value.details() and "edgetl train --task weld-3" in info.value.details()


def test_tasks_survive_a_restart(server_factory):
    first = server_factory()
    stub(first).CreateTask(model_pb2.CreateTaskRequest(name="station-1", class_names=["ok", "dent"]), timeout=10)
    first.stop()
    second = server_factory()
    assert stub(second).GetTask(model_pb2.GetTaskRequest(name="station-1"), timeout=10).class_names == ["ok", "dent"]


@pytest.mark.parametrize(
    "name, classes, backbone, code, phrase",
    [
        ("bad name!", ["a", "b"], "", grpc.StatusCode.INVALID_ARGUMENT, "task name"),
        ("one-class", ["ok"], "", grpc.StatusCode.INVALID_ARGUMENT, "at least two"),
        ("dupes", ["ok", "ok"], "", grpc.StatusCode.INVALID_ARGUMENT, "repeat"),
        ("imagenet", ["a", "b"], "", grpc.StatusCode.ALREADY_EXISTS, "built in"),
        ("other", ["a", "b"], "resnet999", grpc.StatusCode.NOT_FOUND, "available: efficientnet_lite0"),
    ],
)
def test_create_task_rejects_bad_requests(server, name, classes, backbone, code, phrase):
    with pytest.raises(grpc.RpcError) as info:
        stub(server).CreateTask(model_pb2.CreateTaskRequest(name=name, class_names=classes, backbone=backbone), timeout=10)
    assert info.value.code() == code and phrase in info.value.details()


def test_creating_a_task_twice_is_already_exists(server):
    request = model_pb2.CreateTaskRequest(name="twice", class_names=["a", "b"])
    stub(server).CreateTask(request, timeout=10)
    with pytest.raises(grpc.RpcError) as info:
        stub(server).CreateTask(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_get_unknown_task_is_not_found(server):
    with pytest.raises(grpc.RpcError) as info:
        stub(server).GetTask(model_pb2.GetTaskRequest(name="ghost"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
