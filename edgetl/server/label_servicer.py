"""edgetl.v1.LabelService: operators' labels."""

from __future__ import annotations

import asyncio

from edgetl.adapt.labels import LabelStore, split_of
from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc
from edgetl.errors import InvalidInput
from edgetl.runtime.engine import InferenceEngine
from edgetl.server.security import operator_name


class LabelServicer(adapt_pb2_grpc.LabelServiceServicer):
    def __init__(self, engine: InferenceEngine, labels: LabelStore, max_pixels: int):
        self.engine = engine
        self.labels = labels
        self.max_pixels = max_pixels

    async def AddLabel(self, request, context):
        task = self.engine.get_task(request.task)
        if task.builtin:
            raise InvalidInput(f"task {task.name!r} is built in; create a task of your own to label (edgetl tasks create)")
        if request.image.WhichOneof("data") != "encoded":
            raise InvalidInput("labels need the image as encoded file bytes (image.encoded: JPEG, PNG or BMP)")
        operator = operator_name(request.operator_id)
        result = await asyncio.to_thread(
            self.labels.add, task.name, task.class_names, request.image.encoded, request.class_name, operator, request.corrects_prediction, self.max_pixels
        )
        return adapt_pb2.AddLabelResponse(
            image_sha256=result.image_sha256, label_id=result.label_id, new_image=result.new_image, relabelled=result.relabelled,
            unchanged=result.unchanged, split=split_of(result.image_sha256), counts=await self._counts(task.name, task.class_names),
        )

    async def GetLabelCounts(self, request, context):
        task = self.engine.get_task(request.task)
        return await self._counts(task.name, task.class_names)

    async def _counts(self, task: str, class_names) -> adapt_pb2.LabelCounts:
        counts = await asyncio.to_thread(self.labels.counts, task)
        per_class = {name: sum(counts.get(name, {}).values()) for name in class_names}
        train = sum(c["train"] for c in counts.values())
        val = sum(c["val"] for c in counts.values())
        classes = [adapt_pb2.ClassCount(class_name=name, **counts.get(name, {"train": 0, "val": 0})) for name in class_names]
        return adapt_pb2.LabelCounts(task=task, per_class=per_class, total=train + val, train=train, val=val, classes=classes)
