"""Conversion between protobuf messages and edgetl's domain objects, in one place."""

from __future__ import annotations

import numpy as np

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


def prediction_to_proto(p: Prediction, request_id: str = "", anomaly_map: bool = False, scores: bool = True) -> inference_pb2.ClassifyResponse:
    """The ClassifyResponse for `p` (`scores=False`: without the per-class scores, for `prediction_to_wire`)."""
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
    if scores:
        response.scores.extend(p.scores.tolist())
    response.top_classes.extend(inference_pb2.ClassScore(label=label, score=score) for label, score in p.top)
    if p.anomaly is not None:
        a = p.anomaly
        response.anomaly.score, response.anomaly.threshold, response.anomaly.anomalous = a.score, a.threshold, a.anomalous
        if anomaly_map:
            from edgetl.anomaly.heatmap import heatmap_png

            response.anomaly.map.extend(a.map.ravel().tolist())
            response.anomaly.map_height, response.anomaly.map_width = a.map.shape
            response.anomaly.map_png = heatmap_png(a.map, a.threshold, p.input_size)
    return response


# ClassifyResponse.scores on the wire: its field number, length-delimited (a packed repeated float).
_SCORES_KEY = bytes([inference_pb2.ClassifyResponse.DESCRIPTOR.fields_by_name["scores"].number << 3 | 2])


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def prediction_to_wire(p: Prediction, request_id: str = "", anomaly_map: bool = False) -> bytes:
    """`prediction_to_proto(...).SerializeToString()`, the scores copied as one packed field straight from numpy.

    The scores are most of an answer (1,000 floats for an ImageNet task):
    turning them into Python floats and back cost 20 us of the event loop's
    time per answer, this copy under 1 us (BENCHMARKS.md, "Against the servers
    a plant could pick instead"). Protobuf parsers accept fields in any order
    and join a repeated field's pieces, so every client reads the same message.
    The servicers return these bytes; the interceptor's serializer passes bytes
    through (edgetl.server.interceptors).
    """
    packed = np.ascontiguousarray(p.scores, dtype="<f4").tobytes()
    head = prediction_to_proto(p, request_id, anomaly_map, scores=False).SerializeToString()
    return head + _SCORES_KEY + _varint(len(packed)) + packed


def task_to_proto(task: Task, active_version: str = "", drift=None) -> model_pb2.Task:
    """`drift`: the task's edgetl.monitor.monitor.DriftStatus, when it is watched."""
    return model_pb2.Task(
        name=task.name,
        backbone=task.backbone,
        class_names=list(task.class_names),
        active_adapter_version=active_version,
        builtin=task.builtin,
        kind=task.kind,
        drift=drift_to_proto(drift) if drift is not None else None,
    )


def drift_to_proto(s) -> model_pb2.DriftStatus:
    return model_pb2.DriftStatus(
        state=s.state, since=s.since, test=s.test, statistic=s.statistic, threshold=s.threshold, images=s.images, window=s.window,
        adapter_version=s.adapter_version, has_reference=s.has_reference, burn_in_left=s.burn_in_left, last=dict(s.last), message=s.message,
    )


def metrics_to_proto(m: dict | None):
    from edgetl.api.v1 import adapt_pb2

    if not m:
        return None
    return adapt_pb2.Metrics(
        accuracy=m["accuracy"],
        n=m["n"],
        per_class=[adapt_pb2.ClassMetrics(label=k, precision=v["precision"], recall=v["recall"], support=v["support"]) for k, v in m["per_class"].items()],
        confusion=[c for row in m["confusion"] for c in row],
    )


def job_to_proto(job):
    import json

    from edgetl.api.v1 import adapt_pb2

    r = job.result
    return adapt_pb2.Job(
        id=job.id, task=job.task, method=job.method, state=job.state, error=r.get("error", ""), version=r.get("version", ""),
        activated=bool(r.get("activated")), gate=r.get("gate", ""), metrics=metrics_to_proto(r.get("metrics")),
        active_metrics=metrics_to_proto(r.get("active_metrics")), scratch_metrics=metrics_to_proto(r.get("scratch_metrics")),
        created_at=job.created_at, finished_at=job.finished_at, options_json=json.dumps(job.options),
    )


def job_event_to_proto(event: dict, job=None):
    from edgetl.api.v1 import adapt_pb2

    message = adapt_pb2.JobEvent(
        job_id=event.get("job_id", ""), phase=event.get("phase", ""), epoch=int(event.get("epoch") or 0), epochs=int(event.get("epochs") or 0),
        loss=float(event.get("loss") or 0.0), val_accuracy=float(event.get("val_accuracy") or 0.0), elapsed_s=float(event.get("elapsed_s") or 0.0),
        eta_s=float(event.get("eta_s") or 0.0), message=str(event.get("message") or ""),
    )
    if job is not None:
        message.job.CopyFrom(job_to_proto(job))
    return message


def adapter_to_proto(adapter, active_version: int | None, activated: set[int]):
    import json

    from edgetl.api.v1 import adapt_pb2

    state = "active" if adapter.version == active_version else ("retired" if adapter.version in activated else "candidate")
    return adapt_pb2.Adapter(
        task=adapter.task, version=str(adapter.version), method=adapter.method, state=state, metrics=metrics_to_proto(adapter.metrics),
        options_json=json.dumps(adapter.options), backbone=adapter.backbone, export_id=adapter.export_id, created_at=adapter.created_at,
        label_count=int(adapter.labels.get("count", 0)), label_snapshot=str(adapter.labels.get("hash", "")),
        scratch_metrics=metrics_to_proto(adapter.extra.get("scratch_metrics")),
    )


def options_from_proto(options) -> dict:
    """Only the fields the caller set; the trainer fills in its defaults."""
    return {field.name: value for field, value in options.ListFields()}


def review_item_to_proto(item, image: bytes = b""):
    from edgetl.api.v1 import review_pb2

    return review_pb2.ReviewItem(
        id=item.id, task=item.task, captured_at=item.captured_at, adapter_version=item.adapter_version, predicted=item.predicted,
        score=item.score, margin=item.margin, scores=item.scores, reasons=item.reasons, caller=item.caller, request_id=item.request_id,
        state=item.state, resolved_at=item.resolved_at, resolved_by=item.resolved_by, resolved_class=item.resolved_class,
        label_id=item.label_id, image_format=item.format, width=item.width, height=item.height, image_bytes=item.size, image=image,
    )


def policy_to_proto(task: str, stored):
    from edgetl.api.v1 import review_pb2

    return review_pb2.CapturePolicy(
        task=task, customized=stored.customized, updated_at=stored.updated_at, updated_by=stored.updated_by, **stored.policy.as_dict()
    )


def policy_changes_from_proto(request) -> dict:
    """The fields of a SetCapturePolicyRequest the caller set (proto3 `optional`)."""
    from edgetl.review.policy import FIELDS

    return {field.name: value for field, value in request.ListFields() if field.name in FIELDS}
