"""Choose ONNX Runtime execution providers: TensorRT -> CUDA -> CPU by default.

Providers that are not installed are skipped, and one log line says what
runs. TensorRT gets FP16 and persistent engine and timing caches in the
model store, in a directory keyed by the ONNX file, the TensorRT version and
the GPU, so an engine is rebuilt only when one of those changes (a TensorRT
engine is specific to all three).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)

#: Short names accepted in settings; any full ORT provider name is accepted too.
ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
CPU = "CPUExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

ProviderList = list[str | tuple[str, dict[str, Any]]]


def resolve_names(requested: Sequence[str]) -> list[str]:
    return [ALIASES.get(name.lower(), name) for name in requested]


def choose_providers(
    requested: Sequence[str],
    available: Sequence[str],
    trt_cache_root: Path,
    onnx_sha256: str,
    int8: bool = False,
) -> tuple[ProviderList, str]:
    """The provider list for a session, and the one log line describing it.

    `int8`: the model is quantized (QDQ, edgetl.adapt.quantize); TensorRT
    then needs its INT8 flag to honour the quantize/dequantize pairs.

    CPU is always appended last as the floor: a server that cannot use its
    GPU still serves, and says so.
    """
    wanted = resolve_names(requested)
    chosen: ProviderList = []
    skipped = []
    for name in wanted:
        if name not in available:
            skipped.append(name)
        elif name == TENSORRT:
            chosen.append((name, tensorrt_options(trt_cache_dir(trt_cache_root, onnx_sha256), int8)))
        else:
            chosen.append(name)
    if CPU not in wanted:
        chosen.append(CPU)
    names = [p if isinstance(p, str) else p[0] for p in chosen]
    line = f"onnxruntime providers: {' -> '.join(names)}"
    if skipped:
        line += f" (not installed, skipped: {', '.join(skipped)})"
    return chosen, line


def tensorrt_options(cache_dir: Path, int8: bool = False) -> dict[str, Any]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    return {
        "trt_fp16_enable": True,
        # Explicit quantization: the scales are in the model's QDQ pairs, so no calibration table.
        **({"trt_int8_enable": True} if int8 else {}),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        # Build one engine that covers batch 1..max_batch rather than one per size.
        "trt_builder_optimization_level": 3,
    }


def trt_cache_dir(root: Path, onnx_sha256: str) -> Path:
    """<root>/<onnx sha>-trt<version>-<gpu>: a new model, TensorRT or GPU gets a new directory."""
    return Path(root) / f"{onnx_sha256[:16]}-trt{tensorrt_version()}-{_slug(gpu_identity())}"


@functools.cache
def tensorrt_version() -> str:
    for dist in ("tensorrt", "tensorrt-libs", "tensorrt-cu12-libs", "tensorrt-cu13-libs", "tensorrt_libs"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:  # JetPack installs TensorRT as a system package with Python bindings
        import tensorrt  # type: ignore[import-not-found]

        return tensorrt.__version__
    except ImportError:
        return "unknown"


@functools.cache
def gpu_identity() -> str:
    """GPU name and compute capability, e.g. 'NVIDIA H100 80GB HBM3 sm90'."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", "0"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout.strip()
            if out:
                name, _, cap = out.partition(",")
                return f"{name.strip()} sm{cap.strip().replace('.', '')}"
        except (OSError, subprocess.SubprocessError):
            pass
    model = Path("/proc/device-tree/model")  # Jetson: no nvidia-smi
    if model.is_file():
        return model.read_text(errors="replace").strip("\x00 \n")
    return "unknown-gpu"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:60]
