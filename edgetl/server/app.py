"""The edgetl server: load backbones, start gRPC with health and reflection, stop gracefully.

Start-up order: plugins -> backbone exports (exported once, in a spawned
process, then reused) -> ONNX Runtime sessions, warmed up -> gRPC services ->
health SERVING -> the `ready` line. On SIGTERM: health NOT_SERVING, then
stop with a grace period so calls in flight finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from edgetl import metrics
from edgetl.adapt.activation import Activator
from edgetl.adapt.jobs import JobManager
from edgetl.adapt.labels import LabelStore
from edgetl.adapt.versions import AdapterVersions
from edgetl.anomaly.enrol import Enroller
from edgetl.api.kserve import grpc_service_pb2 as kserve_pb2
from edgetl.api.kserve import grpc_service_pb2_grpc as kserve_pb2_grpc
from edgetl.api.v1 import (
    adapt_pb2,
    adapt_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    review_pb2,
    review_pb2_grpc,
)
from edgetl.audit import AuditLog
from edgetl.backbones.registry import BackboneRegistry
from edgetl.db import DB_FILE
from edgetl.errors import ConfigError, EdgetlError
from edgetl.metrics import start_metrics_server
from edgetl.monitor.monitor import DriftMonitor, DriftSettings
from edgetl.review.capture import Capturer
from edgetl.review.policy import CapturePolicies, default_policy
from edgetl.review.store import ReviewStore
from edgetl.runtime.batcher import MicroBatcher, gather_for, worker_threads_for
from edgetl.runtime.engine import ActiveAdapter, InferenceEngine
from edgetl.runtime.heads import LogitsHead
from edgetl.runtime.session import BackboneSession
from edgetl.runtime.store import ModelStore
from edgetl.runtime.threads import limit_blas
from edgetl.server import eventloop
from edgetl.server.adapter_servicer import AdapterServicer
from edgetl.server.inference_servicer import InferenceServicer
from edgetl.server.interceptors import ErrorMappingInterceptor
from edgetl.server.kserve_servicer import SERVICE_NAME as KSERVE_SERVICE
from edgetl.server.kserve_servicer import KServeServicer
from edgetl.server.label_servicer import LabelServicer
from edgetl.server.model_servicer import ModelServicer
from edgetl.server.review_servicer import ReviewServicer
from edgetl.server.routing import MethodTable
from edgetl.server.security import Authenticator, check_bind, server_credentials
from edgetl.server.training_servicer import TrainingServicer
from edgetl.settings import Settings
from edgetl.tasks.store import Task, TaskStore

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name,
    model_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    *(adapt_pb2.DESCRIPTOR.services_by_name[name].full_name for name in ("LabelService", "TrainingService", "AdapterService")),
    review_pb2.DESCRIPTOR.services_by_name["ReviewService"].full_name,
)


def reflection_pool() -> descriptor_pool.DescriptorPool:
    """Every service's proto in one pool, so grpcurl sees both APIs without .proto files.

    The KServe protos live in a private pool (see protos/generate.py), so the
    default pool alone would not describe them; this pool holds copies of all.
    """
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        pool.AddSerializedFile(file.serialized_pb)
        added.add(file.name)

    for module in (inference_pb2, model_pb2, adapt_pb2, review_pb2, kserve_pb2, health_pb2, reflection_pb2):
        add(module.DESCRIPTOR)
    return pool


class EdgetlServer:
    """One server process's worth of state. `await start()`, then `await stop()`."""

    def __init__(self, settings: Settings, extra_plugins: Iterable[tuple[str, object]] = ()):
        self.settings = settings
        self.extra_plugins = list(extra_plugins)
        self.port: int | None = None
        self.engine: InferenceEngine | None = None
        self.jobs: JobManager | None = None
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self.certificates = None  # CertificateFiles when serving TLS; re-read on change
        self.kserve: KServeServicer | None = None
        #: Every service's methods, the gRPC server's one handler (edgetl.server.routing).
        self.method_table: MethodTable | None = None
        self.capture: Capturer | None = None
        self.monitor: DriftMonitor | None = None
        self.metrics_port: int | None = None
        self._metrics_http = None
        self.terminal = None  # edgetl.terminal.app.Terminal when [terminal] terminal = true
        self.socket_path: Path | None = None
        #: The temporary directory made for the socket when the data directory's path is too long (removed at stop).
        self._socket_dir: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    async def start(self) -> str:
        settings = self.settings
        started = time.perf_counter()
        limit_blas(1)  # bank searches beside ONNX Runtime's spinning threads (edgetl.runtime.threads)
        data_dir = Path(settings.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.registry = BackboneRegistry.from_settings(settings, self.extra_plugins)
        self.store = ModelStore(data_dir / "store")
        tasks = TaskStore(data_dir / DB_FILE)
        self.labels = LabelStore(data_dir, data_dir / DB_FILE)
        self.versions = AdapterVersions(data_dir, data_dir / DB_FILE)

        wanted = [settings.default_backbone] + sorted({t.backbone for t in tasks.list()} - {settings.default_backbone})
        batchers: dict[str, MicroBatcher] = {}
        for name in wanted:
            try:
                batchers[name] = await asyncio.to_thread(self._load_backbone, name)
            except EdgetlError as exc:
                if name == settings.default_backbone:
                    raise
                log.error("backbone %s not loaded (%s); its tasks answer FAILED_PRECONDITION", name, exc)

        default = batchers[settings.default_backbone].session
        workers = worker_threads_for(settings.worker_threads, list(getattr(default, "providers", [])))
        log.info("%d inference worker thread%s", workers, "" if workers == 1 else "s")
        # How many waiting requests a worker takes together, so their images share a batch.
        gather = gather_for(batchers[settings.default_backbone].max_batch, list(getattr(default, "providers", [])))
        self.engine = InferenceEngine(tasks, batchers, settings.max_pixels, workers, settings.max_queue, gather)
        for name in batchers:
            spec = self.registry.get(name).spec
            if spec.builtin_task:
                task = Task(spec.builtin_task, name, spec.class_names, builtin=True)
                self.engine.add_builtin_task(task, ActiveAdapter("builtin", LogitsHead()))

        self.reviews = ReviewStore(data_dir, data_dir / DB_FILE, self.labels.image_path)
        swept = self.reviews.sweep()
        if swept:
            log.info("removed %d review image(s) no item needs (left by an interrupted write)", swept)
        self.policies = CapturePolicies(data_dir / DB_FILE, default_policy(settings))
        self.capture = Capturer(
            self.reviews, self.policies, self.engine.builtin_tasks, settings.max_pixels, settings.capture_queue, drift_rate=settings.drift_capture_rate
        )
        for task in tasks.list():
            metrics.REVIEW_PENDING.labels(task.name).set(self.reviews.pending(task.name))

        self.audit = AuditLog(Path(settings.audit_log) if settings.audit_log else data_dir / "audit.jsonl")
        self.monitor = DriftMonitor(data_dir / DB_FILE, DriftSettings.of(settings), self.audit, enabled=settings.drift)
        self.engine.monitor = self.monitor

        self.activator = Activator(self.engine, self.versions, settings, self.store.trt_cache)
        await self.activator.restore()
        self.jobs = JobManager(settings, data_dir / DB_FILE, self.versions, self.activator)
        self.jobs.recover()

        check_bind(settings)
        tls = server_credentials(settings)
        credentials, self.certificates = tls if tls else (None, None)
        authenticator = Authenticator(settings)
        if credentials is not None and not authenticator.enforcing:
            log.warning("TLS without client certificates or tokens: traffic is encrypted, but every caller is admin")
        self._server = grpc.aio.server(
            interceptors=[ErrorMappingInterceptor(authenticator, self.audit)],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
            ],
        )
        # Every service into one table, the server's one generic handler
        # (edgetl.server.routing: no per-method pending requests to wait on).
        # Classify answers leave serialized (convert.prediction_to_wire): the interceptor's serializer passes bytes through.
        table = MethodTable()
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(self.engine, self.capture), table)
        model_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.registry, self.engine, settings.default_backbone, self.load_backbone, security=authenticator.enforcing), table
        )
        adapt_pb2_grpc.add_LabelServiceServicer_to_server(LabelServicer(self.engine, self.labels, settings.max_pixels), table)
        adapt_pb2_grpc.add_TrainingServiceServicer_to_server(TrainingServicer(self.engine, self.jobs), table)
        enroller = Enroller(self.engine, self.versions, self.activator, self.labels, settings.max_pixels)
        adapt_pb2_grpc.add_AdapterServiceServicer_to_server(AdapterServicer(self.engine, self.versions, self.activator, enroller), table)
        review_pb2_grpc.add_ReviewServiceServicer_to_server(
            ReviewServicer(self.engine, self.reviews, self.labels, self.policies, settings.max_pixels), table
        )
        self.kserve = KServeServicer(self.engine, self.versions, self.activator, self.capture)
        kserve_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.kserve, table)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, table)
        # reflection.enable_server_reflection picks its asyncio servicer only for a grpc.aio.Server; the table is not one.
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(
                (*SERVICE_NAMES, KSERVE_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
                pool=reflection_pool(),
            ),
            table,
        )
        self._server.add_generic_rpc_handlers((table,))
        self.method_table = table
        try:
            address = f"{settings.host}:{settings.port}"
            if credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from exc
        if not self.port:
            raise ConfigError(f"cannot listen on {settings.host}:{settings.port} (in use, or not an address of this machine)")
        if settings.terminal:
            self._add_terminal_socket(data_dir)
        await self._server.start()
        if self.socket_path is not None:
            os.chmod(self.socket_path, 0o600)  # this user's processes only; tokens are still checked on it
        if settings.metrics:
            self._metrics_http, _ = start_metrics_server(settings.metrics_host or settings.host, settings.metrics_port)
            self.metrics_port = self._metrics_http.server_port
        if settings.terminal:
            await self._start_terminal()
        for service in ("", *SERVICE_NAMES, KSERVE_SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("started in %.2f s (event loop: %s)", time.perf_counter() - started, eventloop.loop_name())
        return self.address

    def _add_terminal_socket(self, data_dir: Path) -> None:
        """A Unix socket for the embedded terminal, with gRPC's local credentials.

        The terminal is a gRPC client like any other; the socket spares it a
        client certificate of its own when the TCP port speaks mutual TLS.
        It is no way around security: every call still carries the signed-in
        person's token, and the interceptor checks it as on the TCP port.
        """
        path = data_dir.resolve() / "edgetl.sock"
        if len(str(path)) > 100:  # AF_UNIX paths are short
            self._socket_dir = Path(tempfile.mkdtemp(prefix="edgetl-"))
            path = self._socket_dir / "edgetl.sock"
        path.unlink(missing_ok=True)  # left by a server that was killed
        if not self._server.add_secure_port(f"unix:{path}", grpc.local_server_credentials(grpc.LocalConnectionType.UDS)):
            raise ConfigError(f"cannot open the terminal's socket {path}")
        self.socket_path = path

    async def _start_terminal(self) -> None:
        from edgetl.terminal.app import Terminal, TerminalConfig
        from edgetl.terminal.client import ChannelSpec

        s = self.settings
        config = TerminalConfig(
            host=s.terminal_host or s.host, port=s.terminal_port, idle_s=s.terminal_session_idle_s,
            tls_cert=s.terminal_tls_cert or s.tls_cert, tls_key=s.terminal_tls_key or s.tls_key, insecure=s.insecure,
            max_upload=s.max_message_bytes,
        )
        self.terminal = Terminal(ChannelSpec(f"unix:{self.socket_path}", local=True), config)
        await self.terminal.start()

    def _load_backbone(self, name: str) -> MicroBatcher:
        backbone = self.registry.get(name)
        record = self.store.ensure(backbone, self.settings.to_dict())
        session = BackboneSession(record, self.settings, self.store.trt_cache)
        batcher = MicroBatcher(session, self.settings.max_batch)
        seconds = session.warm_up(batcher.max_batch)
        log.info("backbone %s ready (export %s, batches up to %d, warm-up %.2f s)", name, record.export_id, batcher.max_batch, seconds)
        return batcher

    async def load_backbone(self, name: str) -> None:
        """Load a backbone while serving (a new task on a backbone not yet in use)."""
        if name not in self.engine.batchers:
            self.engine.batchers[name] = await asyncio.to_thread(self._load_backbone, name)
            spec = self.registry.get(name).spec
            if spec.builtin_task and spec.builtin_task not in self.engine.builtin_tasks:
                self.engine.add_builtin_task(Task(spec.builtin_task, name, spec.class_names, builtin=True), ActiveAdapter("builtin", LogitsHead()))

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING first (balancers stop sending), then finish in-flight calls."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self.terminal is not None:
            await self.terminal.stop()
        if self.kserve is not None:
            self.kserve.ready = False
        if self._server is not None:
            await self._server.stop(self.settings.grace_s if grace is None else grace)
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)
        # Only the directory this server made: a name test once matched the default data directory,
        # `edgetl-data`, and a stop that tried to remove it raised (rmdir refused: not empty).
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        if self.jobs is not None:
            await self.jobs.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        if self.capture is not None:
            await asyncio.to_thread(self.capture.close)  # write what the line already handed over
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.close)
        if self.engine is not None:
            self.engine.close()
            self.engine.tasks.close()
            self.labels.close()
            self.versions.close()
            for store in (getattr(self, "reviews", None), getattr(self, "policies", None)):
                if store is not None:
                    store.close()

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


async def serve_forever(settings: Settings, announce=print) -> None:
    """Run until SIGTERM or SIGINT; `announce` gets the line containing `ready`."""
    server = EdgetlServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        address = await server.start()
    except BaseException:
        await server.stop(0)
        raise
    engine = server.engine
    loaded = ", ".join(f"{name} on {b.session.providers[0]}" for name, b in engine.batchers.items())
    tasks = ", ".join(t.name for t in engine.list_tasks()) or "none"
    metrics = f"; metrics on http://{settings.metrics_host or settings.host}:{server.metrics_port}/metrics" if server.metrics_port else ""
    terminal = f"; terminal on {server.terminal.url}" if server.terminal else ""
    announce(f"edgetl ready on {address} (backbones: {loaded}; tasks: {tasks}){metrics}{terminal}")
    await stop.wait()
    log.info("shutting down: health NOT_SERVING, %.1f s grace for calls in flight", settings.grace_s)
    await server.stop()
