"""The KServe v2 protocol, driven by the real Triton client (tritonclient[grpc]) against a real server."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc
from tests.adapt_helpers import CLASSES, create_and_label, png, train
from tests.conftest import TINY, encode


@pytest.fixture
def client(server):
    c = triton.InferenceServerClient(url=server.address)
    yield c
    c.close()


def _images_input(*files: bytes) -> triton.InferInput:
    tensor = triton.InferInput("images", [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=np.object_))
    return tensor


def _edgetl_scores(server, data: bytes, task="imagenet") -> np.ndarray:
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    return np.array(stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=data)), timeout=30).scores)


def test_readiness_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("imagenet") and client.is_model_ready("imagenet", "builtin")
    assert not client.is_model_ready("imagenet", "7") and not client.is_model_ready("no-such-task")
    server_meta = client.get_server_metadata(as_json=True)
    assert server_meta["name"] == "edgetl" and "model_repository" in server_meta["extensions"]
    meta = client.get_model_metadata("imagenet", as_json=True)
    assert meta["versions"] == ["builtin"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [("images", "BYTES", ["-1"]), ("pixels", "UINT8", ["-1", "-1", "-1", "3"])]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == [("labels", "BYTES", ["-1"]), ("scores", "FP32", ["-1", "1000"])]


def test_infer_a_batch_of_encoded_images(server, client, chelsea_rgb):
    files = [encode(chelsea_rgb, ".png"), encode(chelsea_rgb, ".jpg")]
    result = client.infer("imagenet", [_images_input(*files)], request_id="frame-17")
    assert [label.decode() for label in result.as_numpy("labels")] == ["Egyptian cat", "Egyptian cat"]
    scores = result.as_numpy("scores")
    assert scores.shape == (2, 1000) and scores.dtype == np.float32
    for row, data in zip(scores, files):  # the same numbers the edgetl.v1 API gives
        np.testing.assert_allclose(row, _edgetl_scores(server, data), atol=1e-6)
    response = result.get_response()
    assert response.id == "frame-17" and response.model_version == "builtin"
    assert len(json.loads(response.parameters["class_names"].string_param)) == 1000


def test_infer_raw_pixels_and_a_chosen_output(client, chelsea_rgb):
    pixels = triton.InferInput("pixels", [1, *chelsea_rgb.shape], "UINT8")
    pixels.set_data_from_numpy(chelsea_rgb[None])
    result = client.infer("imagenet", [pixels], outputs=[triton.InferRequestedOutput("labels")])
    assert result.as_numpy("labels").tolist() == [b"Egyptian cat"] and result.as_numpy("scores") is None


def test_a_batch_of_raw_pixels_is_answered_image_by_image(client, chelsea_rgb):
    # One frame is read from the request's bytes as they came; a batch is cut into its images.
    # A black image beside the cat: a mix-up of the two would change the answers.
    black = np.zeros_like(chelsea_rgb)
    pixels = triton.InferInput("pixels", [2, *chelsea_rgb.shape], "UINT8")
    pixels.set_data_from_numpy(np.stack([black, chelsea_rgb]))
    batch = client.infer("imagenet", [pixels]).as_numpy("scores")
    for row, image in zip(batch, (black, chelsea_rgb)):
        one = triton.InferInput("pixels", [1, *image.shape], "UINT8")
        one.set_data_from_numpy(image[None])
        np.testing.assert_allclose(row, client.infer("imagenet", [one]).as_numpy("scores")[0], atol=1e-6)
    assert batch[1].argmax() == 285 and batch[0].argmax() != 285  # the cat is the second image, not the first


def _raw_infer(server, request_fields, raw):
    """A hand-built ModelInferRequest (what a non-Python client might send), on the raw method."""
    from edgetl.api.kserve import grpc_service_pb2 as pb

    request = pb.ModelInferRequest(model_name="imagenet", raw_input_contents=raw)
    request.inputs.add(**request_fields)
    call = server.channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer", request_serializer=pb.ModelInferRequest.SerializeToString, response_deserializer=pb.ModelInferResponse.FromString
    )
    return call(request, timeout=30)


def test_bad_inference_requests_get_clear_errors_and_the_server_goes_on(server, client, chelsea_rgb):
    good = encode(chelsea_rgb, ".jpg")
    cases = {
        "unknown model": (lambda: client.infer("weld-seam-9", [_images_input(good)]), "StatusCode.NOT_FOUND", "unknown task 'weld-seam-9'"),
        "version not loaded": (lambda: client.infer("imagenet", [_images_input(good)], model_version="3"), "StatusCode.NOT_FOUND", "version '3' is not loaded"),
        "unknown output": (
            lambda: client.infer("imagenet", [_images_input(good)], outputs=[triton.InferRequestedOutput("logits")]), "StatusCode.INVALID_ARGUMENT", "unknown output 'logits'"),
        "garbage image": (lambda: client.infer("imagenet", [_images_input(b"not an image")]), "StatusCode.INVALID_ARGUMENT", "unsupported image format"),
    }
    for name, (call, code, message) in cases.items():
        with pytest.raises(InferenceServerException) as info:
            call()
        assert info.value.status() == code and message in info.value.message(), (name, info.value)

    raw_cases = {
        "truncated length prefix": (dict(name="images", datatype="BYTES", shape=[1]), [b"\x10\x00"], "4-byte length prefix"),
        "element shorter than its prefix": (dict(name="images", datatype="BYTES", shape=[1]), [b"\xff\x00\x00\x00abc"], "says it has 255 bytes"),
        "shape disagrees with elements": (dict(name="images", datatype="BYTES", shape=[2]), [len(good).to_bytes(4, "little") + good], "carries 1 elements"),
        "wrong datatype": (dict(name="images", datatype="FP32", shape=[1]), [b"\x00" * 4], "must be BYTES"),
        "unknown input": (dict(name="image", datatype="BYTES", shape=[1]), [b"\x00" * 4], "unknown input 'image'"),
        "pixels of the wrong size": (dict(name="pixels", datatype="UINT8", shape=[1, 4, 4, 3]), [b"\x00" * 47], "carries 47"),
        "pixels not RGB": (dict(name="pixels", datatype="UINT8", shape=[1, 4, 4, 4]), [b"\x00" * 64], "[N, H, W, 3]"),
    }
    for name, (fields, raw, message) in raw_cases.items():
        with pytest.raises(grpc.RpcError) as info:
            _raw_infer(server, fields, raw)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details(), (name, info.value.details())

    assert client.infer("imagenet", [_images_input(good)]).as_numpy("labels").tolist() == [b"Egyptian cat"]


def test_repository_index_load_and_unload_map_to_adapter_versions(server_factory):
    server = server_factory()
    images = create_and_label(server, task="line4", backbone=TINY, per_class=6, size=64)
    train(server, task="line4", method="head")
    train(server, task="line4", method="head", force=True, seed=5)
    client = triton.InferenceServerClient(url=server.address)
    probe = png(images[0][1])

    index = {(m.name, m.version): m.state for m in client.get_model_repository_index().models}
    assert index[("line4", "1")] == "UNAVAILABLE" and index[("line4", "2")] == "READY" and index[("imagenet", "builtin")] == "READY"
    assert [(m.name, m.version) for m in client.get_model_repository_index().models if m.name == "line4"] == [("line4", "1"), ("line4", "2")]

    # Load version 1 the Triton way: a config with a specific version policy.
    client.load_model("line4", config=json.dumps({"version_policy": {"specific": {"versions": [1]}}}))
    assert client.is_model_ready("line4", "1") and not client.is_model_ready("line4", "2")
    result = client.infer("line4", [_images_input(probe)], model_version="1")
    assert result.get_response().model_version == "1"
    # The task's own class names, in the scores' order (encoded once per task, appended to each answer).
    assert json.loads(result.get_response().parameters["class_names"].string_param) == list(CLASSES)
    assert list(result.get_response().parameters) == ["class_names"]
    np.testing.assert_allclose(result.as_numpy("scores")[0], _edgetl_scores(server, probe, "line4"), atol=1e-6)
    # A class added later shows in the next answer (its score 0: the adapter predates it).
    model_pb2_grpc.ModelServiceStub(server.channel).AddClass(model_pb2.AddClassRequest(task="line4", class_name="dent"), timeout=30)
    grown = client.infer("line4", [_images_input(probe)], model_version="1")
    assert json.loads(grown.get_response().parameters["class_names"].string_param) == [*CLASSES, "dent"]
    assert grown.as_numpy("scores").shape == (1, len(CLASSES) + 1) and grown.as_numpy("scores")[0, -1] == 0

    client.unload_model("line4")
    assert not client.is_model_ready("line4")
    with pytest.raises(InferenceServerException) as info:
        client.infer("line4", [_images_input(probe)])
    assert info.value.status() == "StatusCode.FAILED_PRECONDITION" and "no active adapter" in info.value.message()
    assert {m.state for m in client.get_model_repository_index().models if m.name == "line4"} == {"UNAVAILABLE"}

    client.load_model("line4")  # no version: the newest
    assert client.is_model_ready("line4", "2")
    with pytest.raises(InferenceServerException) as info:
        client.load_model("line4", files={"file:1/model.onnx": b"\x00"})
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and "does not accept model files" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.load_model("line4", config=json.dumps({"version_policy": {"specific": {"versions": [9]}}}))
    assert info.value.status() == "StatusCode.NOT_FOUND"
    assert client.is_model_ready("line4", "2")  # a failed load leaves the active version serving
    client.close()


def test_an_unload_survives_a_restart(server_factory):
    server = server_factory()
    create_and_label(server, task="line5", backbone=TINY, per_class=6, size=64)
    train(server, task="line5", method="head")
    client = triton.InferenceServerClient(url=server.address)
    client.unload_model("line5")
    client.close()
    server.stop()
    restarted = server_factory()
    client = triton.InferenceServerClient(url=restarted.address)
    assert not client.is_model_ready("line5")
    client.load_model("line5")
    assert client.is_model_ready("line5", "1")
    client.close()
