"""Export a backbone to ONNX and prove the export computes what torch computes.

Runs in the export process only (it imports torch). The ONNX graph takes one
input, ``image`` float32 [batch, 3, H, W] normalised per the spec, with a
dynamic batch axis, and has one output per name in ``spec.output_names``.
"""

from __future__ import annotations

import logging
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backbones.spec import Backbone
from edgetl.errors import ExportError

#: ONNX opset of new exports; part of the export key.
OPSET = 18
#: Bump when the layout of an export (inputs, outputs, files) changes; part of the key.
EXPORT_FORMAT = 1
#: Parity tolerance: max |onnx - torch| <= PARITY_TOL * max(1, max |torch|) per output.
#: Pooled features and logits (|x| < ~10) are held to 1e-4 absolute; intermediate
#: maps reach |x| ~ 50, where float32 rounding alone gives ~1e-4.
PARITY_TOL = 1e-4
INPUT_NAME = "image"

log = logging.getLogger(__name__)


def parity_inputs(spec, batch: int = 3) -> np.ndarray:
    """Deterministic inputs that look like images: gradients, stripes and noise."""
    h, w = spec.input_size
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    images = [
        np.stack([xx / w, yy / h, (xx + yy) / (w + h)]),
        np.stack([np.sin(xx / 7), np.cos(yy / 5), np.sin((xx + yy) / 11)]) * 0.5 + 0.5,
        rng.uniform(0, 1, (3, h, w)),
    ][:batch]
    x = np.stack(images).astype(np.float32)
    mean = np.array(spec.mean, np.float32)[:, None, None]
    std = np.array(spec.std, np.float32)[:, None, None]
    return (x - mean) / std


def export_backbone(backbone: Backbone, onnx_path: Path) -> dict[str, Any]:
    """Build, export and parity-check `backbone`; returns facts for the manifest.

    Raises:
        ExportError: the module breaks the contract, export fails, or ONNX
            Runtime disagrees with torch beyond the tolerance.
    """
    return export_module(backbone.build().eval(), backbone.spec, backbone.spec.output_names, onnx_path)


def export_module(module, spec, output_names, onnx_path: Path) -> dict[str, Any]:
    """Export any module that maps images to a dict of named outputs, and prove
    ONNX Runtime computes what torch computes (backbones and LoRA adapters alike)."""
    import onnxruntime as ort
    import torch

    output_names = tuple(output_names)
    wrapper = _tuple_outputs(module.eval(), output_names).eval()
    x = torch.from_numpy(parity_inputs(spec))
    with torch.no_grad():
        try:
            reference = [t.numpy() for t in wrapper(x)]
        except KeyError as exc:
            raise ExportError(f"{spec.name!r}: module output lacks {exc}; declared {output_names}") from exc
    exporter = _export(wrapper, x, onnx_path, output_names)

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(list(output_names), {INPUT_NAME: x.numpy()})
    diffs = {}
    for name, ref, out in zip(output_names, reference, got):
        if ref.shape != out.shape:
            raise ExportError(f"{spec.name!r}: output {name} has shape {out.shape} in ONNX, {ref.shape} in torch")
        diff = float(np.abs(ref - out).max())
        limit = PARITY_TOL * max(1.0, float(np.abs(ref).max()))
        if not diff <= limit:  # also catches NaN
            raise ExportError(
                f"{spec.name!r}: ONNX output {name!r} differs from torch by {diff:.3g} "
                f"(limit {limit:.3g}); the export is not faithful, check for unsupported ops"
            )
        diffs[name] = diff
    # The batch axis must really be dynamic: run one image alone.
    single = session.run([output_names[0]], {INPUT_NAME: x.numpy()[:1]})[0]
    if single.shape[0] != 1:
        raise ExportError(f"{spec.name!r}: batch axis is not dynamic in the export")
    return {
        "exporter": exporter,
        "outputs": {name: list(ref.shape[1:]) for name, ref in zip(output_names, reference)},
        "parity_max_abs_diff": diffs,
        "tools": tool_versions(),
    }


def _tuple_outputs(module, names):
    """Wrap `module` so it returns a tuple in declared order: ONNX outputs are positional."""
    import torch

    class TupleOutputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module
            self.names = list(names)

        def forward(self, x):
            out = self.inner(x)
            return tuple(out[n] for n in self.names)

    return TupleOutputs()


def _export(wrapper, x, onnx_path: Path, output_names) -> str:
    """torch.onnx's dynamo exporter first; the TorchScript one if a model defeats it."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper,
                (x,),
                input_names=[INPUT_NAME],
                output_names=list(output_names),
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
            program.save(str(onnx_path), external_data=False)
        return f"torch.onnx dynamo (torch {torch.__version__})"
    except Exception as exc:  # noqa: BLE001 - any failure here has a fallback
        log.warning("dynamo export failed (%s: %s); trying the TorchScript exporter", type(exc).__name__, str(exc)[:200])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (x,),
                str(onnx_path),
                input_names=[INPUT_NAME],
                output_names=list(output_names),
                dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in output_names}},
                opset_version=17,
                dynamo=False,
            )
        return f"torch.onnx torchscript (torch {torch.__version__})"
    except Exception as exc:
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc


def tool_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    import edgetl

    versions = {
        "python": platform.python_version(),
        "edgetl": edgetl.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    try:
        import timm

        versions["timm"] = timm.__version__
    except ImportError:  # pragma: no cover - a plugin may not use timm
        pass
    return versions
