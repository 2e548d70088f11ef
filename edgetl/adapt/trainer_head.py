"""Train a head on frozen features: class-balanced multinomial logistic regression.

Numpy only (no torch import: a head job starts in a second). Full-batch
Adam on the softmax cross-entropy with L2, features standardised first;
deterministic for given inputs. On ~2,000 multi-scale features and 300
images it converges in well under a second on one core.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

#: `views`: each labelled image is fitted in this many of its flips and quarter turns
#: (edgetl.adapt.features.VIEWS); 8 measured best on the tuning generators (BENCHMARKS.md).
DEFAULTS = {"epochs": 300, "learning_rate": 0.05, "weight_decay": 1e-3, "views": 8}


def train_head(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    options: dict,
    progress: Callable[[dict], None] = lambda e: None,
) -> dict[str, np.ndarray]:
    """Returns mean, std, weight [K, D], bias [K] for a LinearHead."""
    steps = int(options.get("epochs") or DEFAULTS["epochs"])
    lr = float(options.get("learning_rate") or DEFAULTS["learning_rate"])
    l2 = float(options.get("weight_decay") if options.get("weight_decay") is not None else DEFAULTS["weight_decay"])
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    z = ((x - mean) / std).astype(np.float64)
    n, d = z.shape
    onehot = np.eye(num_classes)[y]
    # Each class weighs the same in the loss however many labels it has.
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    sample_w = (n / (num_classes * np.maximum(counts, 1)))[y][:, None] / n
    w = np.zeros((num_classes, d))
    b = np.log(np.maximum(counts, 1) / n)
    m_w, v_w, m_b, v_b = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    beta1, beta2 = 0.9, 0.999
    started = time.monotonic()
    for step in range(1, steps + 1):
        logits = z @ w.T + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        grad_logits = (p - onehot) * sample_w
        g_w = grad_logits.T @ z + l2 * w
        g_b = grad_logits.sum(axis=0)
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w**2
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b**2
        corr1, corr2 = 1 - beta1**step, 1 - beta2**step
        w -= lr * (m_w / corr1) / (np.sqrt(v_w / corr2) + 1e-8)
        b -= lr * (m_b / corr1) / (np.sqrt(v_b / corr2) + 1e-8)
        if step % 50 == 0 or step == steps:
            loss = float(-(np.log(p[np.arange(n), y] + 1e-12) * sample_w[:, 0]).sum() + 0.5 * l2 * (w**2).sum())
            elapsed = time.monotonic() - started
            progress({"phase": "train", "epoch": step, "epochs": steps, "loss": loss, "elapsed_s": elapsed, "eta_s": elapsed / step * (steps - step)})
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32), "weight": w.astype(np.float32), "bias": b.astype(np.float32)}
