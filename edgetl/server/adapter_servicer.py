"""edgetl.v1.AdapterService: versions, activation, rollback."""

from __future__ import annotations

import asyncio

from edgetl.adapt.activation import Activator
from edgetl.adapt.versions import AdapterVersions
from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc
from edgetl.runtime.engine import InferenceEngine
from edgetl.server.convert import adapter_to_proto


class AdapterServicer(adapt_pb2_grpc.AdapterServiceServicer):
    def __init__(self, engine: InferenceEngine, versions: AdapterVersions, activator: Activator):
        self.engine = engine
        self.versions = versions
        self.activator = activator

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

    def _proto(self, adapter):
        return adapter_to_proto(adapter, self.versions.active_version(adapter.task), self.versions.activated_versions(adapter.task))
