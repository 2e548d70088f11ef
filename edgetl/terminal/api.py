"""The terminal's JSON API: one handler per button, each one RPC (or a few reads) to the server.

Responses are the protobuf messages in protobuf's JSON mapping (field names
as in the .proto files; 64-bit integers as strings), so what the page sees
is what a script calling the gRPC API would see. Errors are
``{"error": message, "code": gRPC status}`` with a matching HTTP status,
mapped in the middleware (app.py).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict

import cv2
import grpc
import numpy as np
from aiohttp import web
from google.protobuf.json_format import MessageToDict

from edgetl.anomaly.heatmap import overlay
from edgetl.api.v1 import adapt_pb2, image_pb2, model_pb2, review_pb2
from edgetl.terminal.client import ServerClient, explain
from edgetl.terminal.sessions import SESSION

CLIENT = web.AppKey("client", ServerClient)
MAX_UPLOAD = web.AppKey("max_upload", int)
THUMBNAILS = web.AppKey("thumbnails", OrderedDict)
THUMBNAIL_CACHE = 512
KEEPALIVE_S = 15.0
ACTIONS = {"accept": review_pb2.ACCEPT, "relabel": review_pb2.RELABEL, "reject": review_pb2.REJECT, "skip": review_pb2.SKIP}
POLICY_FIELDS = ("enabled", "uncertain_score", "uncertain_margin", "random_rate", "per_minute", "per_hour", "per_day", "disk_bytes")
IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "bmp": "image/bmp"}


class BadRequest(Exception):
    """The page sent something malformed (answered 400 with the message)."""


def forward(rpc_name: str, build, timeout: float = 30.0):
    """A handler that is exactly one RPC: `build(request)` makes its message from the URL.

    `rpc_name` is "<stub>.<Method>" on the ServerClient, e.g. "training.ListJobs".
    """
    stub, method = rpc_name.split(".")

    async def handler(request):
        return reply(await rpc(request, getattr(getattr(_client(request), stub), method), build(request), timeout))

    handler.__name__ = method
    return handler


def to_json(message) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def reply(message) -> web.Response:
    return web.json_response(to_json(message) if not isinstance(message, dict) else message)


async def rpc(request: web.Request, method, message, timeout: float = 30.0):
    """Call `method` with the signed-in person's credentials."""
    return await method(message, timeout=timeout, metadata=request[SESSION].metadata())


def _client(request) -> ServerClient:
    return request.app[CLIENT]


async def _body(request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _number(query, name: str, kind=float):
    raw = query.get(name, "")
    if raw == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number, got {raw!r}") from None


# -- overview ------------------------------------------------------------------


async def overview(request):
    """Tasks, their active versions, pending reviews, throughput and latency, live accuracy."""
    c = _client(request)
    tasks, summary, stats = await asyncio.gather(
        rpc(request, c.models.ListTasks, model_pb2.ListTasksRequest()),
        rpc(request, c.review.GetReviewSummary, review_pb2.GetReviewSummaryRequest()),
        rpc(request, c.models.GetServerStats, model_pb2.GetServerStatsRequest()),
    )
    trained = [t.name for t in tasks.tasks if not t.builtin]
    live = await asyncio.gather(*(rpc(request, c.review.GetLiveAccuracy, review_pb2.GetLiveAccuracyRequest(task=name)) for name in trained))
    return web.json_response({
        "tasks": [to_json(t) for t in tasks.tasks], "review": {s.task: to_json(s) for s in summary.tasks},
        "stats": to_json(stats), "live_accuracy": {l.task: to_json(l) for l in live},
    })


async def add_class(request):
    body = await _body(request)
    message = model_pb2.AddClassRequest(task=request.match_info["task"], class_name=str(body.get("class_name", "")))
    return reply(await rpc(request, _client(request).models.AddClass, message))


# -- review --------------------------------------------------------------------


async def review_items(request):
    q = request.query
    message = review_pb2.ListReviewItemsRequest(
        task=q.get("task", ""), state=q.get("state", ""), reasons=[r for r in q.getall("reason", []) if r], predicted=q.get("predicted", ""),
        order=q.get("order", ""), page_token=q.get("page_token", ""), page_size=_number(q, "page_size", int) or 0,
    )
    for bound in ("min_score", "max_score"):
        value = _number(q, bound)
        if value is not None:
            setattr(message, bound, value)
    return reply(await rpc(request, _client(request).review.ListReviewItems, message))


async def review_image(request):
    """The item's image as captured, or a JPEG thumbnail (`?size=N`, the longer side) for the grid."""
    item_id, size = _item_id(request), _number(request.query, "size", int)
    if size is not None and not 16 <= size <= 2048:
        raise BadRequest("size must be between 16 and 2048 pixels")
    cache = request.app[THUMBNAILS]
    key = (request[SESSION].id if request[SESSION].token else "", item_id, size)
    if key not in cache:
        item = await rpc(request, _client(request).review.GetReviewItem, review_pb2.GetReviewItemRequest(id=item_id, include_image=True))
        if size:
            cache[key] = ("image/jpeg", await asyncio.to_thread(_thumbnail, item.image, size))
        else:
            cache[key] = (IMAGE_TYPES.get(item.image_format, "application/octet-stream"), item.image)
        while len(cache) > THUMBNAIL_CACHE:
            cache.popitem(last=False)
    cache.move_to_end(key)
    content_type, data = cache[key]
    return web.Response(body=data, content_type=content_type, headers={"Cache-Control": "private, max-age=600"})


async def review_heatmap(request):
    """An anomaly task's item with the active adapter's anomaly map blended over it (JPEG): where the part differs from the good ones.

    Scored again by the server (GetReviewItem with include_anomaly_map), so it
    shows what the version serving now sees; the headers say which version,
    its score and threshold. Not counted as a prediction by the server.
    """
    item = await rpc(request, _client(request).review.GetReviewItem, review_pb2.GetReviewItemRequest(id=_item_id(request), include_image=True, include_anomaly_map=True))
    a = item.anomaly
    jpeg = await asyncio.to_thread(_heatmap_jpeg, item.image, np.array(a.map, np.float32).reshape(a.map_height, a.map_width), a.threshold)
    headers = {
        "Cache-Control": "no-store",  # a new version (an enrolment) changes the map
        "X-Adapter-Version": item.anomaly_adapter_version, "X-Anomaly-Score": f"{a.score:.4f}", "X-Anomaly-Threshold": f"{a.threshold:.4f}",
    }
    return web.Response(body=jpeg, content_type="image/jpeg", headers=headers)


def _heatmap_jpeg(data: bytes, anomaly_map: np.ndarray, threshold: float) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.imencode(".jpg", overlay(image, anomaly_map, threshold), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def _thumbnail(data: bytes, size: int) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    scale = size / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def _item_id(request) -> int:
    try:
        return int(request.match_info["item"])
    except ValueError:
        raise BadRequest(f"review item id {request.match_info['item']!r} is not a number") from None


async def resolve(request):
    body = await _body(request)
    action = ACTIONS.get(str(body.get("action", "")))
    if action is None:
        raise BadRequest("action must be accept, relabel, reject or skip")
    try:
        ids = [int(i) for i in body.get("item_ids", [])]
    except (TypeError, ValueError):
        raise BadRequest("item_ids must be a list of numbers") from None
    message = review_pb2.ResolveReviewItemsRequest(item_ids=ids, action=action, class_name=str(body.get("class_name", "")), task=str(body.get("task", "")))
    return reply(await rpc(request, _client(request).review.ResolveReviewItems, message))


async def enrol_good(request):
    """An anomaly task's review item confirmed good and added to the bank now (EnrollGood: a new
    adapter version, serving when this returns), then resolved as labelled `good`."""
    client, item_id = _client(request), _item_id(request)
    item = await rpc(request, client.review.GetReviewItem, review_pb2.GetReviewItemRequest(id=item_id, include_image=True))
    enrolled = await rpc(request, client.adapters.EnrollGood, adapt_pb2.EnrollGoodRequest(task=item.task, image=image_pb2.Image(encoded=item.image)), timeout=60)
    resolved = await rpc(
        request, client.review.ResolveReviewItems,
        review_pb2.ResolveReviewItemsRequest(item_ids=[item_id], action=ACTIONS["relabel"], class_name="good", task=item.task),
    )
    return web.json_response({"enrolled": to_json(enrolled), "resolved": to_json(resolved)})


async def set_threshold(request):
    """An anomaly task's sensitivity: `{"false_alarm_rate": 0.02}` or `{"threshold": 1.3}` (SetAnomalyThreshold: a new version, serving when this returns)."""
    body = await _body(request)
    message = adapt_pb2.SetAnomalyThresholdRequest(task=request.match_info["task"])
    for name in ("false_alarm_rate", "threshold"):
        if name in body:
            try:
                setattr(message, name, float(body[name]))
            except (TypeError, ValueError):
                raise BadRequest(f"{name} must be a number, got {body[name]!r}") from None
            break
    return reply(await rpc(request, _client(request).adapters.SetAnomalyThreshold, message, timeout=60))


async def capture_policy(request):
    c, task = _client(request), request.match_info["task"]
    if request.method == "GET":
        return reply(await rpc(request, c.review.GetCapturePolicy, review_pb2.GetCapturePolicyRequest(task=task)))
    body = await _body(request)
    message = review_pb2.SetCapturePolicyRequest(task=task, reset=bool(body.get("reset", False)))
    for name in POLICY_FIELDS:
        if name in body:
            try:
                setattr(message, name, body[name])
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"{name}: {exc}") from None
    return reply(await rpc(request, c.review.SetCapturePolicy, message))


# -- labels --------------------------------------------------------------------


async def upload_label(request):
    """One image file (multipart: class_name, file) becomes a label; the page sends many, one by one."""
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("send the image as multipart/form-data with fields class_name and file")
    limit = request.app[MAX_UPLOAD]
    class_name, filename, data = "", "", b""
    async for part in await request.multipart():
        if part.name == "class_name":
            class_name = (await part.text()).strip()
        elif part.name == "file":
            filename = part.filename or "file"
            chunks, size = [], 0
            while chunk := await part.read_chunk(1 << 16):
                size += len(chunk)
                if size > limit:
                    return web.json_response({"error": f"{filename} is over the {limit // 2**20} MiB limit", "code": "RESOURCE_EXHAUSTED"}, status=413)
                chunks.append(chunk)
            data = b"".join(chunks)
    if not filename:
        raise BadRequest("no file in the upload")
    message = adapt_pb2.AddLabelRequest(task=request.match_info["task"], image=image_pb2.Image(encoded=data), class_name=class_name)
    try:
        response = await rpc(request, _client(request).labels.AddLabel, message)
    except grpc.aio.AioRpcError as exc:
        status, text, code = explain(exc, _client(request).spec.target)
        if code in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"):
            text = f"{filename}: {text}"  # which file, of the fifty dropped at once
        return web.json_response({"error": text, "code": code, "file": filename}, status=status)
    return web.json_response({"file": filename, **to_json(response)})


# -- training ------------------------------------------------------------------


async def start_training(request):
    body = await _body(request)
    options = adapt_pb2.TrainingOptions()
    for name, value in (body.get("options") or {}).items():
        if value in (None, ""):
            continue
        if name not in adapt_pb2.TrainingOptions.DESCRIPTOR.fields_by_name:
            raise BadRequest(f"unknown training option {name!r}")
        try:
            setattr(options, name, value)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"training option {name}: {exc}") from None
    message = adapt_pb2.StartTrainingRequest(task=request.match_info["task"], method=str(body.get("method", "head")), options=options, force=bool(body.get("force")))
    return reply(await rpc(request, _client(request).training.StartTraining, message))


async def job_events(request):
    """A job's progress as server-sent events: every event so far, then live ones, then the end."""
    client = _client(request)
    call = client.training.WatchJob(adapt_pb2.WatchJobRequest(job_id=request.match_info["job"]), metadata=request[SESSION].metadata())
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"})
    await response.prepare(request)
    events: asyncio.Queue = asyncio.Queue()

    async def pump() -> None:  # the gRPC stream into a queue, so waiting can time out for keep-alives
        try:
            async for event in call:
                events.put_nowait(("event", to_json(event)))
            events.put_nowait(("end", {}))
        except grpc.aio.AioRpcError as exc:
            status, text, code = explain(exc, client.spec.target)
            events.put_nowait(("failure", {"error": text, "code": code, "status": status}))

    pumping = asyncio.ensure_future(pump())
    try:
        while True:
            try:
                kind, data = await asyncio.wait_for(events.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if kind == "event":
                await response.write(f"data: {json.dumps(data)}\n\n".encode())
            else:
                await response.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the page went away
    finally:
        call.cancel()
        pumping.cancel()
    return response


# -- adapters ------------------------------------------------------------------


def routes() -> list[web.RouteDef]:
    task = lambda r: r.match_info["task"]  # noqa: E731
    return [
        web.get("/api/overview", overview),
        web.get("/api/tasks", forward("models.ListTasks", lambda r: model_pb2.ListTasksRequest())),
        web.post("/api/tasks/{task}/classes", add_class),
        web.get("/api/tasks/{task}/labels/counts", forward("labels.GetLabelCounts", lambda r: adapt_pb2.GetLabelCountsRequest(task=task(r)))),
        web.post("/api/tasks/{task}/labels", upload_label),
        web.post("/api/tasks/{task}/train", start_training),
        web.get("/api/tasks/{task}/adapters", forward("adapters.ListAdapters", lambda r: adapt_pb2.ListAdaptersRequest(task=task(r)))),
        web.post(
            "/api/tasks/{task}/adapters/{version}/activate",
            forward("adapters.ActivateAdapter", lambda r: adapt_pb2.ActivateAdapterRequest(task=task(r), version=r.match_info["version"]), timeout=120),
        ),
        web.post("/api/tasks/{task}/rollback", forward("adapters.Rollback", lambda r: adapt_pb2.RollbackRequest(task=task(r)), timeout=120)),
        web.get("/api/tasks/{task}/live-accuracy", forward("review.GetLiveAccuracy", lambda r: review_pb2.GetLiveAccuracyRequest(task=task(r)))),
        web.post("/api/tasks/{task}/threshold", set_threshold),
        web.get("/api/tasks/{task}/capture-policy", capture_policy),
        web.put("/api/tasks/{task}/capture-policy", capture_policy),
        web.get("/api/jobs", forward("training.ListJobs", lambda r: adapt_pb2.ListJobsRequest(task=r.query.get("task", "")))),
        web.get("/api/jobs/{job}/events", job_events),
        web.post("/api/jobs/{job}/cancel", forward("training.CancelJob", lambda r: adapt_pb2.CancelJobRequest(job_id=r.match_info["job"]))),
        web.get("/api/review/items", review_items),
        web.get("/api/review/items/{item}", forward("review.GetReviewItem", lambda r: review_pb2.GetReviewItemRequest(id=_item_id(r)))),
        web.get("/api/review/items/{item}/image", review_image),
        web.get("/api/review/items/{item}/heatmap", review_heatmap),
        web.post("/api/review/resolve", resolve),
        web.post("/api/review/items/{item}/enrol", enrol_good),
        web.get("/api/review/summary", forward("review.GetReviewSummary", lambda r: review_pb2.GetReviewSummaryRequest(task=r.query.get("task", "")))),
    ]
