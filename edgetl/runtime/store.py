"""The model store: backbone exports kept content-addressed on disk, with manifests.

Layout under ``<data_dir>/store``::

    exports/<backbone>-<key>/model.onnx      the graph, weights inside
    exports/<backbone>-<key>/manifest.json   how it was made and how to feed it
    trt/<onnx sha>-<trt version>-<gpu>/      TensorRT engine and timing caches

The key hashes everything that determines the graph: the backbone's spec,
its weights file's sha256, the opset and the export format. A second start
finds the export by key and reuses it; a changed weights file gets a new key.
An export is written to a temporary directory and renamed into place only
when complete, so a crash never leaves a half export under a real key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetl.backbones.spec import Backbone
from edgetl.errors import ConfigError, ExportError
from edgetl.fsutil import fsync_dir, fsync_tree, sha256_file, write_json_atomic

# Duplicated from edgetl.backbones.export (which imports numpy/torch paths we
# avoid here); a test keeps them equal.
OPSET = 18
EXPORT_FORMAT = 1
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportRecord:
    """A verified export: where it is and its manifest."""

    export_id: str
    path: Path
    manifest: dict[str, Any]

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def onnx_sha256(self) -> str:
        return self.manifest["onnx_sha256"]

    @property
    def output_shapes(self) -> dict[str, list[int]]:
        return self.manifest["outputs"]


class ModelStore:
    """Finds, verifies and (through a spawned export process) creates backbone exports."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.exports = self.root / "exports"
        self.trt_cache = self.root / "trt"

    # -- keys -----------------------------------------------------------------
    def key_inputs(self, backbone: Backbone) -> dict[str, Any]:
        weights = backbone.weights
        if weights is not None and not weights.is_file():
            raise ConfigError(f"backbone {backbone.name!r}: weights file {weights} does not exist")
        return {
            "spec": backbone.spec.to_dict(),
            "weights_sha256": sha256_file(weights) if weights is not None else "random-seed-0",
            "opset": OPSET,
            "export_format": EXPORT_FORMAT,
        }

    def export_id(self, backbone: Backbone, key_inputs: dict[str, Any] | None = None) -> str:
        inputs = key_inputs or self.key_inputs(backbone)
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
        return f"{backbone.name}-{digest[:16]}"

    # -- reading --------------------------------------------------------------
    def find(self, backbone: Backbone) -> ExportRecord | None:
        """The verified export for `backbone`, or None if there is none yet."""
        export_id = self.export_id(backbone)
        path = self.exports / export_id
        if not (path / MANIFEST).is_file():
            return None
        return self.load(path)

    def load(self, path: Path) -> ExportRecord:
        """Read a manifest and check the ONNX file against its recorded hash."""
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ExportError(f"export {path.name}: unreadable manifest ({exc}); delete {path} to re-export") from exc
        actual = sha256_file(path / ONNX_FILE) if (path / ONNX_FILE).is_file() else "missing"
        if actual != manifest.get("onnx_sha256"):
            raise ExportError(
                f"export {path.name}: {ONNX_FILE} does not match its manifest "
                f"(sha256 {actual[:12]}…, expected {str(manifest.get('onnx_sha256'))[:12]}…); "
                f"the file was changed or damaged; delete {path} to re-export"
            )
        return ExportRecord(path.name, path, manifest)

    # -- writing --------------------------------------------------------------
    def ensure(self, backbone: Backbone, settings_dict: dict[str, Any], timeout_s: float = 1800) -> ExportRecord:
        """Return the export for `backbone`, exporting it first if needed.

        The export runs in a spawned process (torch lives there, never in the
        server); its progress goes to this process's stderr.
        """
        record = self.find(backbone)
        if record is not None:
            return record
        log.info("exporting backbone %s to ONNX (first use; later starts reuse it)", backbone.name)
        request = json.dumps({"settings": settings_dict, "backbone": backbone.name, "store": str(self.root)})
        proc = subprocess.run(
            [sys.executable, "-m", "edgetl.backbones.export_worker"],
            input=request,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout_s,
        )
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
            hint = ""
            if "No module named 'torch'" in proc.stderr or "No module named 'timm'" in proc.stderr:
                hint = "; exporting needs the training extra: pip install 'edgetl[train]'"
            raise ExportError(f"exporting backbone {backbone.name!r} failed: {tail[0]}{hint}")
        record = self.find(backbone)
        if record is None:  # pragma: no cover - the worker said it succeeded
            raise ExportError(f"export of {backbone.name!r} finished but is not in the store")
        return record

    def write(self, backbone: Backbone, export_fn) -> ExportRecord:
        """Export into a temp dir, fsync it, rename it into place (in the export process).

        `export_fn(onnx_path) -> dict` does the export and returns manifest facts.
        If another process finished the same export first, ours is dropped.
        """
        inputs = self.key_inputs(backbone)
        export_id = self.export_id(backbone, inputs)
        final = self.exports / export_id
        tmp = self.exports / f".tmp-{export_id}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            facts = export_fn(tmp / ONNX_FILE)
            spec = backbone.spec
            manifest = {
                "export_id": export_id,
                "backbone": spec.name,
                "plugin": backbone.plugin,
                "spec": spec.to_dict(),
                "weights_file": str(backbone.weights) if backbone.weights else None,
                "weights_sha256": inputs["weights_sha256"],
                "onnx_file": ONNX_FILE,
                "onnx_sha256": sha256_file(tmp / ONNX_FILE),
                "opset": OPSET,
                "export_format": EXPORT_FORMAT,
                "input": {
                    "name": "image",
                    "dtype": "float32",
                    "shape": ["batch", 3, *spec.input_size],
                    "color_order": spec.color_order,
                    "mean": list(spec.mean),
                    "std": list(spec.std),
                },
                **facts,
            }
            write_json_atomic(tmp / MANIFEST, manifest)
            fsync_tree(tmp)
            try:
                os.replace(tmp, final)
            except OSError:
                if not (final / MANIFEST).is_file():
                    raise
                log.info("export %s was completed by another process; keeping that one", export_id)
                shutil.rmtree(tmp, ignore_errors=True)
            fsync_dir(self.exports)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.load(final)
