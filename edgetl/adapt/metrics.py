"""Classification metrics: accuracy, per-class precision and recall, confusion matrix."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]) -> dict:
    """As JSON-ready data; confusion[i][j] counts true class i predicted as j."""
    k = len(class_names)
    confusion = np.zeros((k, k), np.int64)
    for t, p in zip(y_true, y_pred):
        confusion[t, p] += 1
    n = int(confusion.sum())
    per_class = {}
    for i, name in enumerate(class_names):
        predicted, support = int(confusion[:, i].sum()), int(confusion[i].sum())
        per_class[name] = {
            "precision": float(confusion[i, i] / predicted) if predicted else 0.0,
            "recall": float(confusion[i, i] / support) if support else 0.0,
            "support": support,
        }
    return {
        "accuracy": float(np.trace(confusion) / n) if n else 0.0,
        "n": n,
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
