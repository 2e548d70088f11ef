"""edgetl.v1.ReviewService: the review queue, resolutions, live accuracy, capture policies."""

from __future__ import annotations

import asyncio

from edgetl import metrics
from edgetl.adapt.labels import LabelStore
from edgetl.api.v1 import review_pb2, review_pb2_grpc
from edgetl.errors import InvalidInput
from edgetl.review.accuracy import CONFIDENCE, live_accuracy
from edgetl.review.policy import CapturePolicies
from edgetl.review.resolution import check_request, resolve
from edgetl.review.store import Query, ReviewStore
from edgetl.runtime.engine import InferenceEngine
from edgetl.runtime.preprocess import EncodedImage
from edgetl.server.convert import policy_changes_from_proto, policy_to_proto, prediction_to_proto, review_item_to_proto
from edgetl.server.security import LOCAL, current_caller_name, operator_name

_ACTIONS = {review_pb2.ACCEPT: "accept", review_pb2.RELABEL: "relabel", review_pb2.REJECT: "reject", review_pb2.SKIP: "skip"}


class ReviewServicer(review_pb2_grpc.ReviewServiceServicer):
    def __init__(self, engine: InferenceEngine, reviews: ReviewStore, labels: LabelStore, policies: CapturePolicies, max_pixels: int):
        self.engine = engine
        self.reviews = reviews
        self.labels = labels
        self.policies = policies
        self.max_pixels = max_pixels

    async def ListReviewItems(self, request, context):
        task = self.engine.get_task(request.task)
        query = Query(
            task.name, request.state, tuple(request.reasons), request.predicted,
            request.min_score if request.HasField("min_score") else None, request.max_score if request.HasField("max_score") else None,
            request.order, request.page_size, request.page_token,
        )
        items, total, token = await asyncio.to_thread(self.reviews.list, query)
        return review_pb2.ListReviewItemsResponse(items=[review_item_to_proto(i) for i in items], next_page_token=token, total=total)

    async def GetReviewItem(self, request, context):
        item = await asyncio.to_thread(self.reviews.get, request.id)
        if request.include_anomaly_map:
            task = self.engine.get_task(item.task)
            if task.kind != "anomaly":
                raise InvalidInput(f"task {task.name!r} is a {task.kind} task; only anomaly tasks have an anomaly map")
        image = await asyncio.to_thread(self.reviews.image, item) if request.include_image or request.include_anomaly_map else b""
        response = review_item_to_proto(item, image if request.include_image else b"")
        if request.include_anomaly_map:
            answer = await self.engine.look_again(item.task, EncodedImage(image))
            response.anomaly.CopyFrom(prediction_to_proto(answer, anomaly_map=True).anomaly)
            response.anomaly_adapter_version = answer.adapter_version
        return response

    async def ResolveReviewItems(self, request, context):
        action = _ACTIONS.get(request.action)
        if action is None:
            raise InvalidInput("set action: ACCEPT, RELABEL, REJECT or SKIP")
        item_ids = list(request.item_ids)
        check_request(item_ids, action, request.class_name)
        if request.task:
            self.engine.get_task(request.task)  # NOT_FOUND for a task that does not exist
        operator = operator_name(request.operator_id)
        outcomes = await asyncio.to_thread(
            resolve, self.reviews, self.labels, self.engine.get_task, item_ids, action, request.class_name, operator, self.max_pixels, request.task
        )
        for task in {o.task for o in outcomes if o.ok}:
            metrics.REVIEW_RESOLVED.labels(task, action).inc(sum(o.ok and o.task == task for o in outcomes))
            metrics.REVIEW_PENDING.labels(task).set(await asyncio.to_thread(self.reviews.pending, task))
        return review_pb2.ResolveReviewItemsResponse(
            results=[review_pb2.ResolveResult(item_id=o.item_id, ok=o.ok, error=o.error, state=o.state, label_id=o.label_id) for o in outcomes],
            resolved=sum(o.ok for o in outcomes),
        )

    async def GetReviewSummary(self, request, context):
        names = [self.engine.get_task(request.task).name] if request.task else [t.name for t in self.engine.list_tasks() if not t.builtin]
        summary = await asyncio.to_thread(self.reviews.summary, names)
        return review_pb2.ReviewSummary(tasks=[review_pb2.TaskReviewSummary(task=name, **summary[name]) for name in names])

    async def GetLiveAccuracy(self, request, context):
        task = self.engine.get_task(request.task)
        verdicts = await asyncio.to_thread(self.reviews.sampled_verdicts, task.name)
        active = self.engine.adapters.get(task.name)
        return review_pb2.LiveAccuracy(
            task=task.name,
            confidence=CONFIDENCE,
            versions=[
                review_pb2.VersionAccuracy(
                    adapter_version=v.adapter_version, reviewed=v.reviewed, correct=v.correct, accuracy=v.accuracy, low=v.low, high=v.high,
                    active=active is not None and active.version == v.adapter_version, first_at=v.first_at, last_at=v.last_at,
                )
                for v in live_accuracy(verdicts)
            ],
        )

    async def GetCapturePolicy(self, request, context):
        task = self._capturable(request.task)
        return policy_to_proto(task, self.policies.describe(task))

    async def SetCapturePolicy(self, request, context):
        task = self._capturable(request.task)
        stored = await asyncio.to_thread(self.policies.update, task, policy_changes_from_proto(request), current_caller_name(LOCAL), request.reset)
        return policy_to_proto(task, stored)

    def _capturable(self, name: str) -> str:
        task = self.engine.get_task(name)
        if task.builtin:
            raise InvalidInput(f"task {task.name!r} is built in: its images are not captured (they could not become labels)")
        return task.name
