"""inference.GRPCInferenceService: the KServe v2 / Open Inference Protocol, beside edgetl.v1.

Each task is a model; its version is the active adapter's version (the
built-in ImageNet task's is "builtin"). Only the active version serves, so
ModelReady, ModelMetadata and ModelInfer with an explicit version answer for
that one only. The repository extension maps onto adapters:

- RepositoryIndex lists every task and every adapter version, READY for the
  active one;
- RepositoryModelLoad activates a version: the newest by default, or the one
  in the ``version`` parameter, or in a Triton-style ``config`` parameter
  (``{"version_policy": {"specific": {"versions": [2]}}}``). ``file:``
  parameters (uploads of model files) are refused: adapters are trained here;
- RepositoryModelUnload stops serving the task's adapter (recorded, so a
  restart does not bring it back) until a version is loaded again.

Tensor encoding is in kserve_tensors.py; errors map to statuses in the one
interceptor, as for edgetl.v1.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np

import edgetl
from edgetl.adapt.activation import Activator
from edgetl.adapt.versions import AdapterVersions
from edgetl.api.kserve import grpc_service_pb2 as pb
from edgetl.api.kserve import grpc_service_pb2_grpc as pb_grpc
from edgetl.errors import InvalidInput, NotFound, NotReady
from edgetl.runtime.engine import InferenceEngine
from edgetl.server import kserve_tensors as tensors
from edgetl.server.security import current_caller_name
from edgetl.tasks.store import Task

PLATFORM = "edgetl_onnxruntime"
SERVICE_NAME = "inference.GRPCInferenceService"


def _class_names_wire(class_names: tuple[str, ...]) -> bytes:
    """The `class_names` response parameter as a serialized ModelInferResponse holding only it.

    Encoded once per task, not per answer: for the 1,000-class built-in task
    it is 13.5 KB of JSON, which cost more to build into every response than
    the scores. Protobuf parsers merge a message's concatenated pieces (a map
    entry is a repeated field's element), so `ModelInfer` appends these bytes
    to the rest of its serialized response and every client reads one message.
    """
    response = pb.ModelInferResponse()
    response.parameters["class_names"].string_param = json.dumps(list(class_names))
    return response.SerializeToString()


class KServeServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, engine: InferenceEngine, versions: AdapterVersions, activator: Activator, capture=None):
        self.engine = engine
        self.versions = versions
        self.activator = activator
        self.capture = capture  # offered every answer, to keep images for review
        self.ready = True  # false once the server is shutting down
        self._names_wire: dict[str, tuple[tuple[str, ...], bytes]] = {}  # task name -> (its class names, _class_names_wire of them)

    # -- health and metadata ---------------------------------------------------
    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.ready)

    async def ModelReady(self, request, context):
        try:
            self._serving_task(request.name, request.version)
        except (NotFound, NotReady):
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.ready)

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="edgetl", version=edgetl.__version__, extensions=["model_repository"])

    async def ModelMetadata(self, request, context):
        task = self.engine.get_task(request.name)
        active = self.engine.adapters.get(task.name)
        if request.version and (active is None or request.version != active.version):
            raise NotFound(self._version_message(task.name, request.version, active))
        T = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=task.name,
            versions=[active.version] if active else [],
            platform=PLATFORM,
            inputs=[T(name=tensors.IMAGES, datatype="BYTES", shape=[-1]), T(name=tensors.PIXELS, datatype="UINT8", shape=[-1, -1, -1, 3])],
            outputs=[T(name=tensors.LABELS, datatype="BYTES", shape=[-1]), T(name=tensors.SCORES, datatype="FP32", shape=[-1, len(task.class_names)])]
            + (self._anomaly_metadata(task) if task.kind == "anomaly" else []),
        )

    def _anomaly_metadata(self, task: Task) -> list:
        T = pb.ModelMetadataResponse.TensorMetadata
        # The map is on the finest grid the bank reads, as the export recorded it; -1 until an adapter says which maps.
        height, width = -1, -1
        batcher = self.engine.batchers.get(task.backbone)
        active = self.engine.adapters.get(task.name)
        if active is not None and batcher is not None:
            shapes = batcher.session.record.manifest.get("outputs", {})
            grids = [tuple(shapes[n][-2:]) for n in getattr(active.head, "inputs", ()) if len(shapes.get(n, ())) == 3]
            if grids:
                height, width = max(grids, key=lambda g: g[0] * g[1])
        return [
            T(name=tensors.ANOMALY_SCORE, datatype="FP32", shape=[-1]),
            T(name=tensors.ANOMALY_THRESHOLD, datatype="FP32", shape=[-1]),
            T(name=tensors.ANOMALOUS, datatype="BOOL", shape=[-1]),
            T(name=tensors.ANOMALY_MAP, datatype="FP32", shape=[-1, height, width]),
        ]

    # -- inference ---------------------------------------------------------------
    async def ModelInfer(self, request, context):
        if request.model_version:
            self._serving_task(request.model_name, request.model_version)
        images = tensors.images_from_request(request, self.engine.max_queue)
        known = self.engine.builtin_tasks.get(request.model_name) or self.engine.tasks.get(request.model_name)
        outputs = tensors.requested_outputs(request, anomaly=known is not None and known.kind == "anomaly")
        flagged = tensors.flag_for_review(request)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        task, predictions = await self.engine.classify_batch(request.model_name, images, deadline)
        if self.capture is not None:
            caller = current_caller_name()
            for image, prediction in zip(images, predictions):
                self.capture.offer(prediction, image, flagged, caller, request.id)
        response = pb.ModelInferResponse(model_name=task.name, model_version=predictions[0].adapter_version, id=request.id)
        scores = np.stack([p.scores for p in predictions])
        anomalies = [p.anomaly for p in predictions] if predictions[0].anomaly is not None else None
        for name, datatype, shape, raw in tensors.output_tensors(outputs, [p.label for p in predictions], scores, anomalies):
            response.outputs.add(name=name, datatype=datatype, shape=shape)
            response.raw_output_contents.append(raw)
        # Serialized here (the interceptor passes bytes through), with the task's class names appended.
        return response.SerializeToString() + self._class_names(task)

    def _class_names(self, task: Task) -> bytes:
        """`_class_names_wire` for the task, encoded again only when its classes change (one is added)."""
        cached = self._names_wire.get(task.name)
        if cached is None or (cached[0] is not task.class_names and cached[0] != task.class_names):
            cached = self._names_wire[task.name] = (task.class_names, _class_names_wire(task.class_names))
        return cached[1]

    # -- model repository --------------------------------------------------------
    async def RepositoryIndex(self, request, context):
        self._check_repository(request.repository_name)
        models = []
        for task in self.engine.list_tasks():
            active = self.engine.adapters.get(task.name)
            if task.builtin:
                models.append(("builtin", task.name, active))
                continue
            stored = await asyncio.to_thread(self.versions.list, task.name)
            if not stored:
                models.append(("", task.name, None))
            for adapter in stored:
                models.append((str(adapter.version), task.name, active))
        response = pb.RepositoryIndexResponse()
        for version, name, active in models:
            ready = active is not None and active.version == version
            if request.ready and not ready:
                continue
            reason = "" if ready else ("no adapter trained yet" if not version else "not the active adapter version")
            response.models.add(name=name, version=version, state="READY" if ready else "UNAVAILABLE", reason=reason)
        return response

    async def RepositoryModelLoad(self, request, context):
        self._check_repository(request.repository_name)
        task = self.engine.get_task(request.model_name)
        if task.builtin:
            return pb.RepositoryModelLoadResponse()  # always loaded
        version = self._requested_version(request.parameters)
        if version is None:
            stored = await asyncio.to_thread(self.versions.list, task.name)
            if not stored:
                raise NotReady(f"task {task.name!r} has no adapter versions to load; train one (edgetl train --task {task.name})")
            version = max(a.version for a in stored)
        await self.activator.activate(task.name, version, reason="load")
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request, context):
        self._check_repository(request.repository_name)
        task = self.engine.get_task(request.model_name)
        if task.builtin:
            raise NotReady(f"{task.name!r} is a backbone's built-in task; it cannot be unloaded")
        await self.activator.unload(task.name)
        return pb.RepositoryModelUnloadResponse()

    # -- helpers -----------------------------------------------------------------
    def _serving_task(self, name: str, version: str) -> Task:
        """Task `name`, if an adapter serves it; NotFound if `version` is set and is not the active one."""
        task = self.engine.get_task(name)
        active = self.engine.adapters.get(task.name)
        if active is None:
            raise NotReady(f"task {task.name!r} has no active adapter; load a version (RepositoryModelLoad) or train one")
        if version and version != active.version:
            raise NotFound(self._version_message(task.name, version, active))
        return task

    @staticmethod
    def _version_message(task: str, version: str, active) -> str:
        serving = f"version {active.version} is" if active else "no version is"
        return f"task {task!r} version {version!r} is not loaded ({serving} active); load it first (RepositoryModelLoad)"

    @staticmethod
    def _check_repository(name: str) -> None:
        if name not in ("", "edgetl"):
            raise NotFound(f"unknown model repository {name!r}; this server has one, '' (or 'edgetl')")

    @staticmethod
    def _requested_version(parameters) -> int | None:
        for key in parameters:
            if key.startswith("file:"):
                raise InvalidInput(f"parameter {key!r}: edgetl does not accept model files over the API; adapters are trained on the server")
        if "version" in parameters:
            p = parameters["version"]
            raw = p.string_param if p.WhichOneof("parameter_choice") == "string_param" else p.int64_param
        elif "config" in parameters:
            try:
                config = json.loads(parameters["config"].string_param or "{}")
                versions = config.get("version_policy", {}).get("specific", {}).get("versions", [])
            except (ValueError, AttributeError) as exc:
                raise InvalidInput(f"parameter 'config' is not a Triton model config in JSON: {exc}") from exc
            if not versions:
                return None
            if len(versions) != 1:
                raise InvalidInput(f"a task serves one adapter version at a time; the config asks for {versions}")
            raw = versions[0]
        else:
            return None
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise InvalidInput(f"adapter version {raw!r} is not a number") from None
