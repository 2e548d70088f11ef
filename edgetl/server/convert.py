"""Conversion between protobuf messages and edgetl's domain objects, in one place."""

from __future__ import annotations

from edgetl.api.v1 import image_pb2, inference_pb2, model_pb2
from edgetl.errors import InvalidInput
from edgetl.runtime.engine import Prediction
from edgetl.runtime.preprocess import EncodedImage, ImageInput, RawPixels
from edgetl.tasks.store import Task

_COLOR_ORDER = {
    image_pb2.COLOR_ORDER_UNSPECIFIED: "RGB",
    image_pb2.COLOR_ORDER_RGB: "RGB",
    image_pb2.COLOR_ORDER_BGR: "BGR",
}


def image_from_proto(image: image_pb2.Image) -> ImageInput:
    kind = image.WhichOneof("data")
    if kind == "encoded":
        return EncodedImage(image.encoded)
    if kind == "raw":
        raw = image.raw
        if raw.color_order not in _COLOR_ORDER:
            raise InvalidInput(f"raw image color_order {raw.color_order} is not RGB or BGR")
        return RawPixels(raw.data, tuple(raw.shape), raw.dtype or "uint8", _COLOR_ORDER[raw.color_order])
    raise InvalidInput("the request has no image; set image.encoded (JPEG, PNG or BMP bytes) or image.raw")


def prediction_to_proto(p: Prediction, request_id: str = "") -> inference_pb2.ClassifyResponse:
    response = inference_pb2.ClassifyResponse(
        task=p.task,
        label=p.label,
        score=p.score,
        adapter_version=p.adapter_version,
        request_id=request_id,
        timing=inference_pb2.Timing(
            decode_ms=p.decode_ms, queue_ms=p.queue_ms, inference_ms=p.inference_ms, total_ms=p.total_ms
        ),
    )
    response.scores.extend(p.scores.tolist())
    response.top_classes.extend(inference_pb2.ClassScore(label=label, score=score) for label, score in p.top)
    return response


def task_to_proto(task: Task, active_version: str = "") -> model_pb2.Task:
    return model_pb2.Task(
        name=task.name,
        backbone=task.backbone,
        class_names=list(task.class_names),
        active_adapter_version=active_version,
        builtin=task.builtin,
    )
