"""Heads: backbone outputs -> class probabilities, in numpy.

A head names the backbone outputs it needs, so the runtime fetches only those.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from edgetl.backbones.spec import LOGITS


class Head(Protocol):
    #: Backbone outputs this head reads.
    inputs: tuple[str, ...]

    def __call__(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities [N, num_classes], rows summing to 1."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax [N, K] into a new array. The ufuncs' own reductions, not
    `.max()` / `.sum()`: those go through numpy's Python-level wrappers, and
    this runs on the event loop for every answer."""
    z = logits - np.maximum.reduce(logits, axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= np.add.reduce(z, axis=1, keepdims=True)
    return z


class LogitsHead:
    """The backbone's own classifier (the built-in `imagenet` task)."""

    inputs = (LOGITS,)

    def __call__(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        return softmax(np.asarray(features[LOGITS], np.float32))  # softmax writes a new array: no copy first


def pool_features(features: Mapping[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    """Multi-scale features [N, D]: vectors as they are, maps [N, C, h, w] as
    mean and max over space. Max pooling keeps a small local defect (a pit,
    a scratch) from being averaged away; several scales see several sizes."""
    parts = []
    for name in names:
        x = features[name]
        if x.ndim == 2:
            parts.append(x)
        else:
            flat = x.reshape(x.shape[0], x.shape[1], -1)
            parts.append(flat.mean(axis=2))
            parts.append(flat.max(axis=2))
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False)


class LinearHead:
    """A trained head on frozen features: pool -> standardise -> linear -> softmax."""

    def __init__(self, inputs: tuple[str, ...], mean: np.ndarray, std: np.ndarray, weight: np.ndarray, bias: np.ndarray):
        self.inputs = tuple(inputs)
        self.mean = mean.astype(np.float32)
        self.inv_std = (1.0 / std).astype(np.float32)
        self.weight_t = np.ascontiguousarray(weight.T.astype(np.float32))  # [D, K]
        self.bias = bias.astype(np.float32)

    @classmethod
    def load(cls, path) -> LinearHead:
        with np.load(path) as z:
            return cls(tuple(str(n) for n in z["inputs"]), z["mean"], z["std"], z["weight"], z["bias"])

    def pool(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """The features [N, D] this head was fitted on (a guided head pools differently)."""
        return pool_features(features, self.inputs)

    def standardize(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """The vector [N, D] the linear layer reads (the adapter's embedding, for drift monitoring)."""
        return (self.pool(features) - self.mean) * self.inv_std

    def classify(self, z: np.ndarray) -> np.ndarray:
        return softmax(z @ self.weight_t + self.bias)

    def __call__(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.classify(self.standardize(features))


#: The output of a LoRA adapter's model that holds its embedding (the
#: normalised pooled features its classifier reads); older exports lack it.
EMBEDDING = "embedding"


def probabilities_and_embedding(head: Head, features: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """A head's probabilities [N, K] and the embedding [N, D] its classifier read (None when there is none in reach)."""
    if isinstance(head, LinearHead):
        z = head.standardize(features)
        return head.classify(z), z
    return head(features), features.get(EMBEDDING)
