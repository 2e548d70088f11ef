"""A backbone loaded for serving: its ONNX Runtime session and its preprocessing."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import onnxruntime as ort

from edgetl.errors import ExportError
from edgetl.runtime.onnxcheck import check_model
from edgetl.runtime.preprocess import Preprocessor
from edgetl.runtime.providers import CPU, choose_providers
from edgetl.runtime.store import ExportRecord
from edgetl.settings import Settings

log = logging.getLogger(__name__)

_arena_lock = threading.Lock()
_arena: bool | None = None  # None: not tried yet in this process


def shared_cpu_arena() -> bool:
    """One CPU memory arena for every session in the process, registered on first use; False if ORT refused it.

    Each ONNX Runtime session otherwise grows its own arena for the
    activations of its runs (36 MiB for EfficientNet-Lite0 warmed at batch 1
    and 4 with every output fetched; 11 MB per LoRA task in a server) and
    holds it for the process's life. A server with a LoRA or INT8 task per
    station holds a session per task, and they run one image after another,
    so one arena serves them all (BENCHMARKS.md, "Cold paths": memory per LoRA
    task). Sessions opt in with the config entry `session.use_env_allocators`.
    """
    global _arena
    with _arena_lock:
        if _arena is None:
            try:
                memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, -1, -1))  # ORT's default arena settings
                _arena = True
            except Exception as exc:  # noqa: BLE001 - an ORT build without it: each session keeps its own arena
                log.warning("ONNX Runtime did not register a shared CPU arena (%s); each session keeps its own", exc)
                _arena = False
        return _arena


class BackboneSession:
    """Runs one exported backbone. Thread-safe: ORT sessions allow concurrent run()."""

    def __init__(self, record: ExportRecord, settings: Settings, trt_cache_root):
        self.record = record
        # Kept so a training job can open a quantized copy of this backbone the same way.
        self.settings, self.trt_cache_root = settings, trt_cache_root
        manifest = record.manifest
        spec = manifest["spec"]
        self.name: str = manifest["backbone"]
        self.input_name: str = manifest["input"]["name"]
        self.input_size = tuple(spec["input_size"])
        self.class_names: tuple[str, ...] = ()
        self.preprocess = Preprocessor(self.input_size, spec["color_order"], spec["mean"], spec["std"])

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = settings.inter_op_threads
        spin = "1" if settings.ort_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        self.shares_arena = shared_cpu_arena()
        if self.shares_arena:
            options.add_session_config_entry("session.use_env_allocators", "1")
        check_model(record.onnx_path)  # before ORT opens it: no outside data, no custom ops
        providers, line = choose_providers(
            settings.providers, ort.get_available_providers(), trt_cache_root, record.onnx_sha256, int8="int8" in manifest
        )
        self.session = self._create(options, providers)
        self.providers: list[str] = self.session.get_providers()
        log.info("%s (backbone %s; active: %s)", line, self.name, ", ".join(self.providers))
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        missing = set(record.output_shapes) - set(self.output_names)
        if missing:
            raise ExportError(f"export {record.export_id} lacks outputs {sorted(missing)} named in its manifest")

    def _create(self, options: ort.SessionOptions, providers) -> ort.InferenceSession:
        # onnxruntime-gpu lists TensorRT and CUDA as available even when their
        # libraries are missing; a failed start falls down the list, ending on CPU.
        while True:
            try:
                return ort.InferenceSession(str(self.record.onnx_path), options, providers=providers)
            except Exception as exc:  # noqa: BLE001 - retried with fewer providers
                first = providers[0] if isinstance(providers[0], str) else providers[0][0]
                if first == CPU:
                    raise ExportError(f"cannot load {self.record.onnx_path}: {exc}") from exc
                log.warning("provider %s failed to start (%s); falling back", first, str(exc).splitlines()[0][:200])
                providers = providers[1:]

    def run(self, batch: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
        """Run a normalised batch [N, 3, H, W]; returns the requested outputs."""
        values = self.session.run(outputs, {self.input_name: batch})
        return dict(zip(outputs, values))

    def warm_up(self, max_batch: int) -> float:
        """Run once at batch 1 and at max_batch so the first caller does not pay
        for lazy allocation (or a TensorRT engine build). Returns seconds taken."""
        started = time.perf_counter()
        h, w = self.input_size
        for n in sorted({1, max_batch}):
            self.run(np.zeros((n, 3, h, w), np.float32), list(self.output_names))
        return time.perf_counter() - started
