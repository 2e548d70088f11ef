"""An anomaly map as a picture: a PNG heatmap at the network's input size."""

from __future__ import annotations

import cv2
import numpy as np


def heatmap_png(anomaly_map: np.ndarray, threshold: float, size: tuple[int, int]) -> bytes:
    """Blue up to half the threshold (like the good parts), green-yellow near it, red from 1.5 times it.

    The colour scale is fixed to the adapter's threshold, not to the image's
    own range, so a good part stays blue-green instead of having its noise
    stretched into red.
    """
    level = np.clip((anomaly_map / threshold - 0.5), 0.0, 1.0)
    height, width = size if size[0] and size[1] else anomaly_map.shape
    level = cv2.resize(level.astype(np.float32), (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET)
    ok, png = cv2.imencode(".png", colours)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
        raise RuntimeError("the heatmap could not be encoded")
    return png.tobytes()


def overlay(bgr: np.ndarray, anomaly_map: np.ndarray, threshold: float, alpha: float = 0.45) -> np.ndarray:
    """The heatmap blended over the image (for the README and the terminal)."""
    heat = cv2.imdecode(np.frombuffer(heatmap_png(anomaly_map, threshold, bgr.shape[:2]), np.uint8), cv2.IMREAD_COLOR)
    return cv2.addWeighted(bgr, 1.0 - alpha, heat, alpha, 0.0)
