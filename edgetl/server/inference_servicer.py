"""edgetl.v1.InferenceService: classify, one image at a time, as a camera stream, or for several tasks at once."""

from __future__ import annotations

import asyncio
import time

from edgetl.api.v1 import inference_pb2, inference_pb2_grpc
from edgetl.errors import EdgetlError
from edgetl.runtime.engine import InferenceEngine
from edgetl.server.convert import image_from_proto, prediction_to_proto, prediction_to_wire
from edgetl.server.interceptors import status_for
from edgetl.server.security import current_caller_name

#: Frames of one stream processed at once; responses still come back in order.
STREAM_DEPTH = 4


def _deadline(context) -> float | None:
    """The call's deadline on the monotonic clock, or None if the caller set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    """Args:
        engine: classifies.
        capture: offered every answer, to keep images for review (None: nothing is kept).
    """

    def __init__(self, engine: InferenceEngine, capture=None):
        self.engine = engine
        self.capture = capture

    async def Classify(self, request, context):
        image = image_from_proto(request.image)
        prediction = await self.engine.classify(request.task, image, request.top_k, _deadline(context))
        self._offer(request, image, prediction)
        return prediction_to_wire(prediction, request.request_id, request.anomaly_map)

    async def ClassifyTasks(self, request, context):
        received = time.perf_counter()
        image = image_from_proto(request.image)
        predictions, runs = await self.engine.classify_tasks(list(request.tasks), image, request.top_k, _deadline(context))
        for prediction in predictions:
            self._offer(request, image, prediction)
        return inference_pb2.ClassifyTasksResponse(
            answers=[prediction_to_proto(p, request.request_id, request.anomaly_map) for p in predictions],
            request_id=request.request_id,
            backbone_runs=runs,
            total_ms=(time.perf_counter() - received) * 1000,
        )

    def _offer(self, request, image, prediction) -> None:
        if self.capture is not None:
            self.capture.offer(prediction, image, request.flag_for_review, current_caller_name(), request.request_id)

    async def ClassifyStream(self, request_iterator, context):
        # Pipelined: up to STREAM_DEPTH frames in flight, each answered as soon as
        # it and every frame before it are done. A camera that sends one frame
        # and waits for its answer gets it at once; one that sends ahead keeps
        # the backbone busy. Reading runs beside answering so neither waits on
        # the other.
        in_order: asyncio.Queue = asyncio.Queue()  # frames' tasks in arrival order; None ends
        window = asyncio.Semaphore(STREAM_DEPTH)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    await window.acquire()
                    in_order.put_nowait(asyncio.ensure_future(self._one(request)))
            finally:
                in_order.put_nowait(None)

        reader = asyncio.ensure_future(read())
        try:
            while (frame := await in_order.get()) is not None:
                response = await frame
                window.release()
                yield response
            await reader  # a malformed frame ends the stream with its error, after the good ones
        finally:
            reader.cancel()
            while not in_order.empty():
                frame = in_order.get_nowait()
                if frame is not None:
                    frame.cancel()

    async def _one(self, request) -> bytes | inference_pb2.ClassifyResponse:
        """A frame's response (serialized, or an error message); a bad frame gets `error` set and the stream goes on."""
        try:
            image = image_from_proto(request.image)
            prediction = await self.engine.classify(request.task, image, request.top_k)
            self._offer(request, image, prediction)
            return prediction_to_wire(prediction, request.request_id, request.anomaly_map)
        except EdgetlError as exc:
            code, message = status_for(exc)
            return inference_pb2.ClassifyResponse(
                task=request.task,
                request_id=request.request_id,
                error=inference_pb2.Error(code=code.value[0], message=message),
            )
