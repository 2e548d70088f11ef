"""INT8 models for CPU boxes: ONNX Runtime's static quantization, calibrated on a task's own images.

Many lines run on fanless x86 PCs. On CPUs with VNNI (most x86 since
2019), an 8-bit EfficientNet-Lite0 runs about twice as fast as the float
one (BENCHMARKS.md, "INT8"). Static quantization fixes each activation's
scale ahead of time from the ranges seen on calibration images; those
images are the task's own labelled ones, so the ranges are the ones the
line produces (a dark cast part and ImageNet do not share ranges).

The format is QDQ (QuantizeLinear/DequantizeLinear pairs around float
operators): standard ONNX, so the file passes edgetl.runtime.onnxcheck,
and ONNX Runtime's CPU, CUDA and TensorRT providers all read it. Weights
are quantized per output channel (symmetric int8), activations per tensor
(asymmetric uint8); ranges by min/max. Percentile calibration was measured
as no better on our features (cosine to the float features 0.976 against
0.973) at 7× the quantization time, so it is not used.

A quantized model can lose accuracy; the training process evaluates the
quantized holdout model and its float version on the same validation
images, and the gate keeps an INT8 adapter that loses beyond chance as a
candidate (edgetl.adapt.gate).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from edgetl.errors import InvalidInput
from edgetl.settings import PRECISIONS

#: Calibration sees at most this many images: min/max ranges settle long before,
#: and every image costs a float run of the whole network.
MAX_CALIBRATION_IMAGES = 64
ANOMALY_PRECISION = "precision int8 is for classifier adapters (head, lora, auto); an anomaly task's bank is matched in float"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def calibration_images(tensors: np.ndarray, limit: int = MAX_CALIBRATION_IMAGES) -> np.ndarray:
    """An even spread of at most `limit` preprocessed images [N, 3, H, W] (labels are stored by class, so every class is sampled)."""
    if len(tensors) == 0:
        raise InvalidInput("INT8 quantization needs labelled images to calibrate on; there are none")
    pick = np.unique(np.linspace(0, len(tensors) - 1, min(limit, len(tensors))).round().astype(int))
    return tensors[pick]


def quantize_int8(source: Path, target: Path, images: np.ndarray, input_name: str) -> dict:
    """Write an INT8 copy of the float model at `source` to `target`, calibrated on `images`.

    Returns what the adapter's manifest records about it.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self._rows = iter(images)

        def get_next(self):
            row = next(self._rows, None)
            return None if row is None else {input_name: np.ascontiguousarray(row[None], dtype=np.float32)}

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgetl-int8-") as scratch:
        # Shape inference and graph clean-up first, as ONNX Runtime recommends for static quantization.
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(target), Images(),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    _drop_unused_opsets(Path(target))
    return {
        "precision": "int8", "format": "QDQ", "weights": "int8 per channel", "activations": "uint8 per tensor (min/max)",
        "calibration_images": int(len(images)), "quantize_s": round(time.monotonic() - started, 2),
        "bytes": Path(target).stat().st_size, "float_bytes": Path(source).stat().st_size,
    }


def _drop_unused_opsets(path: Path) -> None:
    """Remove operator-set imports no node uses.

    The quantizer declares domains (``ai.onnx.training`` among them) whether or
    not it used them; the serving process refuses a model that names a domain
    ONNX Runtime does not implement (edgetl.runtime.onnxcheck), so a model is
    kept to the domains it really needs.
    """
    import onnx

    model = onnx.load(str(path))
    used = {node.domain or "" for node in model.graph.node} | {"", "ai.onnx"}
    keep = [opset for opset in model.opset_import if (opset.domain or "") in used]
    if len(keep) != len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(keep)
        onnx.save(model, str(path))
