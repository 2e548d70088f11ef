"""edgetl.v1.InferenceService: classify, one image at a time or as a camera stream."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from edgetl.api.v1 import inference_pb2, inference_pb2_grpc
from edgetl.errors import EdgetlError
from edgetl.runtime.engine import InferenceEngine
from edgetl.server.convert import image_from_proto, prediction_to_proto
from edgetl.server.interceptors import status_for

#: Frames of one stream processed at once; responses still come back in order.
STREAM_DEPTH = 4


def _deadline(context) -> float | None:
    """The call's deadline on the monotonic clock, or None if the caller set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, engine: InferenceEngine):
        self.engine = engine

    async def Classify(self, request, context):
        prediction = await self.engine.classify(request.task, image_from_proto(request.image), request.top_k, _deadline(context))
        return prediction_to_proto(prediction, request.request_id)

    async def ClassifyStream(self, request_iterator, context):
        # Pipelined: up to STREAM_DEPTH frames in flight, answered in arrival order.
        pending: deque[asyncio.Task] = deque()
        try:
            async for request in request_iterator:
                pending.append(asyncio.ensure_future(self._one(request)))
                if len(pending) >= STREAM_DEPTH:
                    yield await pending.popleft()
            while pending:
                yield await pending.popleft()
        finally:
            for task in pending:
                task.cancel()

    async def _one(self, request) -> inference_pb2.ClassifyResponse:
        """A frame's response; a bad frame gets `error` set and the stream goes on."""
        try:
            prediction = await self.engine.classify(request.task, image_from_proto(request.image), request.top_k)
            return prediction_to_proto(prediction, request.request_id)
        except EdgetlError as exc:
            code, message = status_for(exc)
            return inference_pb2.ClassifyResponse(
                task=request.task,
                request_id=request.request_id,
                error=inference_pb2.Error(code=code.value[0], message=message),
            )
