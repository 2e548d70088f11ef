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


def cached_features(batcher: MicroBatcher, labels, tensors: np.ndarray, names: tuple[str, ...], cache_dir: Path, emit=lambda e: None) -> np.ndarray:
    """Pooled features [N, D] for `labels` (whose preprocessed images are `tensors`)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    rows: list[np.ndarray | None] = []
    missing = []
    for i, label in enumerate(labels):
        path = cache_dir / f"{label.image_sha256}.npy"
        if path.is_file():
            rows.append(np.load(path))
        else:
            rows.append(None)
            missing.append(i)
    started = time.monotonic()
    for done, i in enumerate(missing, 1):
        result = batcher.run(tensors[i], names)
        row = pool_features({k: v[None] for k, v in result.features.items()}, names)[0]
        # Atomic (rename) but not fsynced: a lost cache file is only recomputed.
        final = cache_dir / f"{labels[i].image_sha256}.npy"
        tmp = final.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, row)
        os.replace(tmp, final)
        rows[i] = row
        if done % 25 == 0 or done == len(missing):
            elapsed = time.monotonic() - started
            emit({"phase": "features", "epoch": done, "epochs": len(missing), "elapsed_s": elapsed, "eta_s": elapsed / done * (len(missing) - done), "message": f"features {done}/{len(missing)} ({len(labels) - len(missing)} cached)"})
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)
