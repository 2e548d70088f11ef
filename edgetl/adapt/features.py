"""Frozen-backbone features for heads, cached per image and backbone export.

Computed by the exported backbone through ONNX Runtime (the very outputs the
server feeds a head at serving time), pooled by
`edgetl.runtime.heads.pool_features`, and kept at
``features/<export id>/<image sha256>.npy``: retraining a head after a few
new labels only computes the new images. A new export (new weights) gets a
new directory, so stale features are never mixed in.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import os
from edgetl.runtime.batcher import MicroBatcher
from edgetl.runtime.heads import pool_features
from edgetl.runtime.views import VIEWS


def cached_features(batcher: MicroBatcher, labels, tensors: np.ndarray, names: tuple[str, ...], cache_dir: Path | None, emit=lambda e: None, view: int = 0) -> np.ndarray:
    """Pooled features [N, D] for `labels` (whose preprocessed images are `tensors`), seen in `view` (an index into VIEWS).

    `cache_dir` None computes every row and keeps none: a backbone made for
    one job (a task's INT8 copy) has features no other job can reuse.
    """
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    rows: list[np.ndarray | None] = []
    missing = []
    suffix = "" if view == 0 else f".v{view}"
    for i, label in enumerate(labels):
        path = cache_dir / f"{label.image_sha256}{suffix}.npy" if cache_dir is not None else None
        if path is not None and path.is_file():
            rows.append(np.load(path))
        else:
            rows.append(None)
            missing.append(i)
    started = time.monotonic()
    transform = VIEWS[view]
    for done, i in enumerate(missing, 1):
        result = batcher.run(np.ascontiguousarray(transform(tensors[i])), names)
        row = pool_features({k: v[None] for k, v in result.features.items()}, names)[0]
        if cache_dir is not None:
            # Atomic (rename) but not fsynced: a lost cache file is only recomputed.
            final = cache_dir / f"{labels[i].image_sha256}{suffix}.npy"
            tmp = final.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, row)
            os.replace(tmp, final)
        rows[i] = row
        if done % 25 == 0 or done == len(missing):
            elapsed = time.monotonic() - started
            emit({"phase": "features", "epoch": done, "epochs": len(missing), "elapsed_s": elapsed, "eta_s": elapsed / done * (len(missing) - done), "message": f"features {done}/{len(missing)} ({len(labels) - len(missing)} cached)"})
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def cached_maps(batcher: MicroBatcher, labels, tensors: np.ndarray, names: tuple[str, ...], cache_dir: Path | None, emit=lambda e: None, view: int = 0) -> list[dict[str, np.ndarray]]:
    """Feature maps {name: [C, h, w]} (float16) of `labels` seen in `view`, for heads that need positions (a guided head).

    Kept beside the pooled features, under ``maps/``, as float16 (about 75 KB
    per image and view for Lite0's two coarsest maps): a retrain after a few
    new labels runs the backbone on those alone.
    """
    directory = cache_dir / "maps" if cache_dir is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    suffix = "" if view == 0 else f".v{view}"
    out: list[dict[str, np.ndarray] | None] = [None] * len(labels)
    missing = []
    for i, label in enumerate(labels):
        path = directory / f"{label.image_sha256}{suffix}.npz" if directory is not None else None
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    if set(names) <= set(z.files):
                        out[i] = {name: z[name] for name in names}
                        continue
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed
        missing.append(i)
    started = time.monotonic()
    transform = VIEWS[view]
    for done, i in enumerate(missing, 1):
        result = batcher.run(np.ascontiguousarray(transform(tensors[i])), names)
        maps = {name: result.features[name].astype(np.float16) for name in names}
        if directory is not None:
            final = directory / f"{labels[i].image_sha256}{suffix}.npz"
            tmp = final.with_name(f"{final.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.savez(f, **maps)
            os.replace(tmp, final)
        out[i] = maps
        if done % 25 == 0 or done == len(missing):
            elapsed = time.monotonic() - started
            emit({"phase": "features", "epoch": done, "epochs": len(missing), "elapsed_s": elapsed, "eta_s": elapsed / done * (len(missing) - done), "message": f"feature maps, view {view + 1}: {done}/{len(missing)} ({len(labels) - len(missing)} cached)"})
    return out  # type: ignore[return-value]
