"""The eight views of a part (flips and quarter turns), for training and for test-time augmentation.

A part can lie on the line any way up, and a defect is a defect in every
view. Head jobs fit every labelled image in all eight (`views`); an adapter
trained with `serve_views` = V > 1 answers each image from its first V
views, probabilities averaged (test-time augmentation): V backbone runs per
image for a steadier answer (BENCHMARKS.md, "What was tried"). The order
nests: the first 2 are the image and its mirror, the first 4 all flips.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgetl.errors import InvalidInput

if TYPE_CHECKING:
    from edgetl.runtime.batcher import BackboneResult

#: Functions of a preprocessed image [C, H, W]: the dihedral group of the square, identity first.
VIEWS = (
    lambda x: x,
    lambda x: x[:, :, ::-1],
    lambda x: x[:, ::-1, :],
    lambda x: x[:, ::-1, ::-1],
    lambda x: np.rot90(x, 1, (1, 2)),
    lambda x: np.rot90(x, 3, (1, 2)),
    lambda x: np.swapaxes(x, 1, 2),
    lambda x: np.rot90(np.swapaxes(x, 1, 2), 2, (1, 2)),
)

#: Views an adapter may answer from: the image alone, + its mirror, + all flips, + the quarter turns.
SERVE_VIEWS = (1, 2, 4, 8)
ANOMALY_VIEWS = "serve_views is for classifier adapters (head, lora, auto); an anomaly task scores the image as sent"


def check_serve_views(value, method: str = "") -> int:
    """`value` as a number of serving views for an adapter of `method`, or InvalidInput saying what is allowed."""
    try:
        views = int(value)
    except (TypeError, ValueError):
        views = -1
    if views not in SERVE_VIEWS:
        raise InvalidInput(f"serve_views must be one of {', '.join(map(str, SERVE_VIEWS))}, got {value!r}")
    if views > 1 and method == "anomaly":
        raise InvalidInput(ANOMALY_VIEWS)
    return views


def views_of(tensor: np.ndarray, count: int) -> list[np.ndarray]:
    """The first `count` views of a preprocessed image [C, H, W], each contiguous (ONNX Runtime copies otherwise)."""
    return [tensor if v == 0 else np.ascontiguousarray(VIEWS[v](tensor)) for v in range(count)]


def stack_views(results: list[BackboneResult], views: int) -> dict[str, np.ndarray]:
    """The first `views` backbone results of one image as a batch [V, ...] per output (one view: no copy, the serving path's usual case)."""
    if views == 1:
        return {name: value[None] for name, value in results[0].features.items()}
    return {name: np.stack([r.features[name] for r in results[:views]]) for name in results[0].features}
