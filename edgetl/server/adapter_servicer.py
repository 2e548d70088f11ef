"""edgetl.v1.AdapterService: versions, activation, rollback."""

from __future__ import annotations

import asyncio

from edgetl.adapt.activation import Activator
from edgetl.adapt.versions import AdapterVersions
from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc
from edgetl.errors import InvalidInput
from edgetl.runtime.engine import InferenceEngine
from edgetl.server.convert import adapter_to_proto
from edgetl.server.security import operator_name


class AdapterServicer(adapt_pb2_grpc.AdapterServiceServicer):
    def __init__(self, engine: InferenceEngine, versions: AdapterVersions, activator: Activator, enroller=None):
        self.engine = engine
        self.versions = versions
        self.activator = activator
        self.enroller = enroller  # edgetl.anomaly.enrol.Enroller

    async def ListAdapters(self, request, context):
        task = self.engine.get_task(request.task)
        adapters = await asyncio.to_thread(self.versions.list, task.name)
        active = self.versions.active_version(task.name)
        activated = self.versions.activated_versions(task.name)
        return adapt_pb2.ListAdaptersResponse(
            adapters=[adapter_to_proto(a, active, activated) for a in adapters], active_version=str(active) if active is not None else ""
        )

    async def ActivateAdapter(self, request, context):
        task = self.engine.get_task(request.task)
        adapter = await self.activator.activate(task.name, request.version, reason="activate")
        return self._proto(adapter)

    async def Rollback(self, request, context):
        task = self.engine.get_task(request.task)
        return self._proto(await self.activator.rollback(task.name))

    async def EnrollGood(self, request, context):
        if request.image.WhichOneof("data") != "encoded":
            raise InvalidInput("a good part is enrolled as encoded file bytes (image.encoded: JPEG, PNG or BMP), as a label is")
        operator = operator_name(request.operator_id)
        e = await self.enroller.enroll(request.task, request.image.encoded, operator)
        return adapt_pb2.EnrollGoodResponse(
            version=e.version, parent_version=e.parent_version, score=e.score, threshold=e.threshold, previous_threshold=e.previous_threshold,
            patches_added=e.patches_added, bank_patches=e.bank_patches, image_sha256=e.image_sha256, elapsed_ms=e.elapsed_ms,
        )

    async def SetAnomalyThreshold(self, request, context):
        which = request.WhichOneof("target")
        if which is None:
            raise InvalidInput("set false_alarm_rate (e.g. 0.01: flag about 1 % of good parts) or threshold (a score)")
        operator = operator_name(request.operator_id)
        kind = {which: float(getattr(request, which))}
        change = await self.enroller.set_threshold(request.task, operator, **kind)
        c = change.calibration
        return adapt_pb2.SetAnomalyThresholdResponse(
            version=change.version, parent_version=change.parent_version, threshold=c.threshold, previous_threshold=change.previous_threshold,
            false_alarm_rate=c.false_alarm_rate, guaranteed_false_alarm_rate=c.guaranteed_false_alarm_rate, good_images=c.n, good_images_above=c.exceeding,
        )

    def _proto(self, adapter):
        return adapter_to_proto(adapter, self.versions.active_version(adapter.task), self.versions.activated_versions(adapter.task))
