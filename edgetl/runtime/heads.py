"""Heads: backbone outputs -> class probabilities, in numpy.

A head names the backbone outputs it needs, so the runtime fetches only those.
"""

from __future__ import annotations

from typing import Mapping, Protocol

import numpy as np

from edgetl.backbones.spec import LOGITS


class Head(Protocol):
    #: Backbone outputs this head reads.
    inputs: tuple[str, ...]

    def __call__(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities [N, num_classes], rows summing to 1."""


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class LogitsHead:
    """The backbone's own classifier (the built-in `imagenet` task)."""

    inputs = (LOGITS,)

    def __call__(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        return softmax(features[LOGITS].astype(np.float32, copy=True))
