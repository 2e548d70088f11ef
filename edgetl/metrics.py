"""Prometheus metrics: what a plant's monitoring scrapes from /metrics.

All metrics live in one registry of their own (not prometheus_client's
global one), with the process collector, and are served by
:func:`start_metrics_server`. Names and labels are documented in README.md
("Metrics"); a test checks that every metric defined here is documented.

Label values are bounded: ``task`` is a known task (unknown names count as
``(unknown)``), ``adapter_version`` one of its versions, ``code`` a gRPC
status name, ``method`` an RPC of ours. A caller cannot grow the series by
sending made-up names.
"""

from __future__ import annotations

import logging

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

import edgetl
from edgetl.errors import ConfigError

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_resident_memory_bytes, process_cpu_seconds_total, ...
PlatformCollector(registry=REGISTRY)

#: Latency buckets in seconds, from a fast GPU (1 ms) to a loaded CPU (2.5 s).
_BUCKETS = (0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)

BUILD = Info("edgetl_build", "edgetl version", registry=REGISTRY)
BUILD.info({"version": edgetl.__version__})

RPCS = Counter("edgetl_rpcs_total", "gRPC calls answered, by method and status code", ["method", "code"], registry=REGISTRY)
IMAGES = Counter("edgetl_images_total", "Images classified, by task and adapter version", ["task", "adapter_version"], registry=REGISTRY)
IMAGE_FAILURES = Counter(
    "edgetl_image_failures_total", "Images not classified (bad input, overload, deadline...), by task and status code", ["task", "code"], registry=REGISTRY
)
DECODE_SECONDS = Histogram("edgetl_decode_seconds", "Decode and preprocess time per image", ["task", "adapter_version"], buckets=_BUCKETS, registry=REGISTRY)
QUEUE_SECONDS = Histogram("edgetl_queue_seconds", "Time an image waited for the backbone", ["task", "adapter_version"], buckets=_BUCKETS, registry=REGISTRY)
INFERENCE_SECONDS = Histogram(
    "edgetl_inference_seconds", "Backbone and head time per image (its share of a batch)", ["task", "adapter_version"], buckets=_BUCKETS, registry=REGISTRY
)
TOTAL_SECONDS = Histogram(
    "edgetl_request_seconds", "Time from receiving an image to its answer, in the server", ["task", "adapter_version"], buckets=_BUCKETS, registry=REGISTRY
)
BACKBONE_RUNS = Counter(
    "edgetl_backbone_runs_total",
    "Backbone runs, by backbone session (a task's LoRA adapter has its own); images per run is the batch size, and a ClassifyTasks call costs one run per backbone, not per task",
    ["backbone"],
    registry=REGISTRY,
)
BACKBONE_IMAGES = Counter("edgetl_backbone_images_total", "Images the backbone ran on, by backbone session", ["backbone"], registry=REGISTRY)
IN_FLIGHT = Gauge("edgetl_images_in_flight", "Images being decoded, waiting or running (bounded by [limits] max_queue)", registry=REGISTRY)
JOBS = Counter("edgetl_training_jobs_total", "Training jobs ended, by task, method and final state", ["task", "method", "state"], registry=REGISTRY)
JOBS_RUNNING = Gauge("edgetl_training_jobs_running", "Training jobs queued or running", registry=REGISTRY)
SWAPS = Counter("edgetl_adapter_swaps_total", "Adapter activations (activate, rollback, load, unload) by task and reason", ["task", "reason"], registry=REGISTRY)
ACTIVE = Gauge("edgetl_active_adapter", "1 for the adapter version each task serves", ["task", "adapter_version"], registry=REGISTRY)
REVIEW_CAPTURED = Counter(
    "edgetl_review_captured_total", "Images kept for review, by task and reason (an image kept for two reasons counts under both)", ["task", "reason"], registry=REGISTRY
)
REVIEW_DROPPED = Counter(
    "edgetl_review_dropped_total", "Images the capture policy chose but did not keep, by task and cause", ["task", "cause"], registry=REGISTRY
)
REVIEW_EVICTED = Counter("edgetl_review_evicted_total", "Unreviewed items removed by a task's review disk cap", ["task"], registry=REGISTRY)
REVIEW_PENDING = Gauge("edgetl_review_pending", "Review items waiting for an operator, by task", ["task"], registry=REGISTRY)
REVIEW_RESOLVED = Counter("edgetl_review_resolved_total", "Review items resolved, by task and action", ["task", "action"], registry=REGISTRY)
DRIFT_STATE = Gauge("edgetl_drift_state", "Drift state of what a task serves: 0 ok, 1 warning, 2 drifted", ["task"], registry=REGISTRY)
DRIFT_Z = Gauge(
    "edgetl_drift_statistic", "The last window's z value per drift test (reference, features, classes, confidence); the threshold is [drift] threshold_z", ["task", "test"],
    registry=REGISTRY,
)


class PredictionMetrics:
    """Per-image figures for one (task, adapter version), label children looked up once."""

    __slots__ = ("decode", "images", "inference", "queue", "total")

    _cache: dict[tuple[str, str], PredictionMetrics] = {}

    def __init__(self, task: str, version: str):
        self.images = IMAGES.labels(task, version)
        self.decode = DECODE_SECONDS.labels(task, version)
        self.queue = QUEUE_SECONDS.labels(task, version)
        self.inference = INFERENCE_SECONDS.labels(task, version)
        self.total = TOTAL_SECONDS.labels(task, version)

    @classmethod
    def of(cls, task: str, version: str) -> PredictionMetrics:
        key = (task, version)
        found = cls._cache.get(key)
        if found is None:
            found = cls._cache[key] = cls(task, version)
        return found

    def observe(self, decode_ms: float, queue_ms: float, inference_ms: float, total_ms: float) -> None:
        self.images.inc()
        self.decode.observe(decode_ms / 1000)
        self.queue.observe(queue_ms / 1000)
        self.inference.observe(inference_ms / 1000)
        self.total.observe(total_ms / 1000)


_active: dict[str, str] = {}  # task -> the version its edgetl_active_adapter series names


def adapter_activated(task: str, version: str | None, reason: str) -> None:
    """Count a swap and move the task's `edgetl_active_adapter` series to `version` (None: unloaded)."""
    SWAPS.labels(task, reason).inc()
    previous = _active.pop(task, None)
    if previous is not None:
        ACTIVE.remove(task, previous)
    if version is not None:
        ACTIVE.labels(task, version).set(1)
        _active[task] = version


def rpc_done(method: str, code: str) -> None:
    """Count one answered call; `method` is the full gRPC path."""
    child = _rpc_children.get((method, code))
    if child is None:
        child = _rpc_children[(method, code)] = RPCS.labels(method.rsplit("/", 1)[-1], code)
    child.inc()


_rpc_children: dict[tuple[str, str], object] = {}


def start_metrics_server(host: str, port: int):
    """Serve /metrics over HTTP in a daemon thread; returns (server, thread). Port 0 picks a free one."""
    try:
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; set [server] metrics_port, or metrics = false"
        ) from exc
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return server, thread
