"""edgetl.v1.ModelService: backbones and tasks."""

from __future__ import annotations

import asyncio
import dataclasses

import edgetl
from edgetl.api.v1 import model_pb2, model_pb2_grpc
from edgetl.backbones.registry import BackboneRegistry
from edgetl.errors import AlreadyExists, InvalidInput
from edgetl.runtime.engine import InferenceEngine
from edgetl.server.convert import task_to_proto
from edgetl.server.security import CURRENT_CALLER, LOCAL


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: BackboneRegistry, engine: InferenceEngine, default_backbone: str, load_backbone, security: bool = False):
        self.registry = registry
        self.engine = engine
        self.default_backbone = default_backbone
        self.load_backbone = load_backbone  # async (name) -> None
        self.security = security  # the server tells callers apart (mutual TLS or tokens)

    async def ListBackbones(self, request, context):
        response = model_pb2.ListBackbonesResponse()
        for backbone in self.registry:
            spec = backbone.spec
            message = model_pb2.Backbone(
                name=spec.name,
                version=spec.version,
                plugin=backbone.plugin,
                input_height=spec.input_size[0],
                input_width=spec.input_size[1],
                color_order=spec.color_order,
                mean=list(spec.mean),
                std=list(spec.std),
                lora_targets=list(spec.lora_targets),
                description=spec.description,
            )
            batcher = self.engine.batchers.get(spec.name)
            if batcher is not None:
                record = batcher.session.record
                message.loaded = True
                message.export_id = record.export_id
                message.onnx_sha256 = record.onnx_sha256
                message.providers.extend(batcher.session.providers)
                for name, shape in record.output_shapes.items():
                    message.outputs.add(name=name, shape=shape)
            response.backbones.append(message)
        return response

    async def ListTasks(self, request, context):
        tasks = await asyncio.to_thread(self.engine.list_tasks)
        return model_pb2.ListTasksResponse(tasks=[self._task(t) for t in tasks])

    async def GetTask(self, request, context):
        task = await asyncio.to_thread(self.engine.get_task, request.name)
        return self._task(task)

    async def CreateTask(self, request, context):
        backbone = request.backbone or self.default_backbone
        self.registry.get(backbone)  # NOT_FOUND with the list of backbones
        if request.name in self.engine.builtin_tasks:
            raise AlreadyExists(f"task {request.name!r} is built in")
        task = await asyncio.to_thread(self.engine.tasks.create, request.name, list(request.class_names), backbone, request.kind)
        await self.load_backbone(backbone)  # exported on first use, then kept loaded
        return task_to_proto(task)

    async def AddClass(self, request, context):
        task = self.engine.get_task(request.task)
        if task.builtin:
            raise InvalidInput(f"task {task.name!r} is built in; its classes are the backbone's")
        task = await asyncio.to_thread(self.engine.tasks.add_class, task.name, request.class_name)
        return self._task(task)

    async def WhoAmI(self, request, context):
        caller = CURRENT_CALLER.get()
        name, role = (caller.name, caller.role) if caller is not None else (LOCAL, "admin")
        return model_pb2.Caller(name=name, role=role, security=self.security)

    async def GetServerStats(self, request, context):
        engine = self.engine
        stats = engine.stats.snapshot([t.name for t in engine.list_tasks()])
        return model_pb2.ServerStats(
            uptime_s=engine.stats.uptime_s(), window_s=engine.stats.window_s, version=edgetl.__version__,
            tasks=[model_pb2.TaskStats(**vars(s)) for s in stats],
        )

    def _version(self, task_name: str) -> str:
        adapter = self.engine.adapters.get(task_name)
        return adapter.version if adapter else ""

    def _task(self, task) -> model_pb2.Task:
        version = self._version(task.name)
        monitor = self.engine.monitor
        if task.builtin or not version or monitor is None or not monitor.enabled:
            return task_to_proto(task, version)
        adapter = self.engine.adapters.get(task.name)
        status = dataclasses.replace(monitor.status(task.name, version), has_reference=adapter is not None and adapter.drift is not None)
        return task_to_proto(task, version, status)
