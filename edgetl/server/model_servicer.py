"""edgetl.v1.ModelService: backbones and tasks."""

from __future__ import annotations

import asyncio

from edgetl.api.v1 import model_pb2, model_pb2_grpc
from edgetl.backbones.registry import BackboneRegistry
from edgetl.runtime.engine import InferenceEngine
from edgetl.errors import AlreadyExists
from edgetl.server.convert import task_to_proto


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: BackboneRegistry, engine: InferenceEngine, default_backbone: str, load_backbone):
        self.registry = registry
        self.engine = engine
        self.default_backbone = default_backbone
        self.load_backbone = load_backbone  # async (name) -> None

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
        return model_pb2.ListTasksResponse(tasks=[task_to_proto(t, self._version(t.name)) for t in tasks])

    async def GetTask(self, request, context):
        task = await asyncio.to_thread(self.engine.get_task, request.name)
        return task_to_proto(task, self._version(task.name))

    async def CreateTask(self, request, context):
        backbone = request.backbone or self.default_backbone
        self.registry.get(backbone)  # NOT_FOUND with the list of backbones
        if request.name in self.engine.builtin_tasks:
            raise AlreadyExists(f"task {request.name!r} is built in")
        task = await asyncio.to_thread(self.engine.tasks.create, request.name, list(request.class_names), backbone)
        await self.load_backbone(backbone)  # exported on first use, then kept loaded
        return task_to_proto(task)

    def _version(self, task_name: str) -> str:
        adapter = self.engine.adapters.get(task_name)
        return adapter.version if adapter else ""
