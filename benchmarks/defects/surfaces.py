"""Surfaces: regions of photographs that ship inside scikit-image (no download), with their licences.

| surface | image | region | licence (from skimage.data's docstrings) |
|---|---|---|---|
| brick, grass, gravel | texture photos | whole | CC0 (cc0textures.com) |
| coins | Greek coins from Pompeii | whole | no known copyright restrictions |
| wood | `coffee`: the table around the cup | left strip | CC0 (Rachel Michetti) |
| cell | a quantitative phase image | whole | CC0 |
| tissue | `retina`: inside the fundus disc | centre | CC0 1.0 |
| field | `camera`: the grass behind the tripod | lower right | CC0 (Lav Varshney) |

`moon` is left out: its docstring states no licence. A part image is a random
square crop of the region, resized to the network's input, with a random flip
and lighting, like edgetl.synthetic's crops but from its own code.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

#: name -> (skimage.data function, region as (y0, y1, x0, x1) fractions)
SURFACES = {
    "brick": ("brick", (0, 1, 0, 1)),
    "grass": ("grass", (0, 1, 0, 1)),
    "gravel": ("gravel", (0, 1, 0, 1)),
    "coins": ("coins", (0, 1, 0, 1)),
    "wood": ("coffee", (0.0, 1.0, 0.0, 0.27)),
    "cell": ("cell", (0, 1, 0, 1)),
    "tissue": ("retina", (0.3, 0.7, 0.3, 0.7)),
    "field": ("camera", (0.72, 1.0, 0.5, 1.0)),
}
TUNING_SURFACES = ("brick", "grass", "gravel")


@functools.lru_cache(maxsize=None)
def region(name: str) -> np.ndarray:
    """The surface's region as BGR uint8."""
    from skimage import data

    source, (y0, y1, x0, x1) = SURFACES[name]
    img = getattr(data, source)()
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    else:
        img = np.ascontiguousarray(img[:, :, :3][:, :, ::-1])
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)])


def part(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One part image: a random square crop of the surface, flipped and lit at random."""
    src = region(name)
    h, w = src.shape[:2]
    side = int(rng.integers(max(32, int(min(h, w) * 0.4)), min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = cv2.resize(src[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_CUBIC)
    k = int(rng.integers(0, 4))
    img = np.rot90(img, k) if src.shape[0] == src.shape[1] else img
    if rng.random() < 0.5:
        img = img[:, ::-1]
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    return np.ascontiguousarray(np.clip((img.astype(np.float32) - 128) * contrast + 128 + brightness, 0, 255).astype(np.uint8))
