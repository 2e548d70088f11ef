"""Generator "blend": defects made from the image's own content, under a real camera's flaws.

- scratch: a dashed specular line (light caught by the groove) blurred along its direction;
- crack: dark, one-pixel lines along the edges of a random Voronoi pattern, inside a small window;
- stain: a colour shift in Lab space inside a soft blob (the surface, discoloured);
- pit: small holes with a bright rim and a dark middle;
- burn: the region blurred, desaturated and darkened toward brown-black.

Every image, `ok` included, may be defocused, noisy and JPEG-compressed, so
"sharp and clean" never gives the class away.
"""

from __future__ import annotations

import cv2
import numpy as np


def camera(img: np.ndarray, rng) -> np.ndarray:
    """What a cheap camera does to the whole picture: defocus, sensor noise, JPEG (each sometimes)."""
    out = img
    if rng.random() < 0.35:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.1))
    if rng.random() < 0.5:
        out = np.clip(out.astype(np.float32) + rng.normal(0, rng.uniform(2, 6), out.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 92))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def _blob(s: int, c, rng, spread: float) -> np.ndarray:
    yy, xx = np.mgrid[:s, :s].astype(np.float32)
    blob = np.zeros((s, s), np.float32)
    for _ in range(int(rng.integers(3, 8))):
        q = c + rng.normal(0, s * spread, 2)
        sig = s * rng.uniform(0.02, 0.06)
        blob = np.maximum(blob, np.exp(-((xx - q[0]) ** 2 + (yy - q[1]) ** 2) / (2 * sig**2)))
    return np.clip(blob * 1.4, 0, 1)


def draw(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    return camera(defect(img, kind, rng), rng)


def defect(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The part with its defect, before the camera (benchmarks.defects.make_set_with_masks compares it with the clean part)."""
    s = img.shape[0]
    scale = s / 224
    out = img.astype(np.float32)
    c = rng.uniform(s * 0.06, s * 0.94, 2)
    if kind == "ok":
        pass
    elif kind == "scratch":
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.3, 0.8) * s
        d = np.array([np.cos(angle), np.sin(angle)])
        mask = np.zeros((s, s), np.float32)
        t = -length / 2
        while t < length / 2:  # dashes: the groove catches the light only in places
            dash = rng.uniform(0.05, 0.2) * length
            a, b = c + d * t, c + d * min(t + dash, length / 2)
            cv2.line(mask, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), 1.0, max(1, int(round(scale))), cv2.LINE_AA)
            t += dash + rng.uniform(0.0, 0.08) * length
        k = max(3, int(5 * scale) | 1)
        kernel = np.zeros((k, k), np.float32)
        cv2.line(kernel, (int(k / 2 - d[0] * k / 2), int(k / 2 - d[1] * k / 2)), (int(k / 2 + d[0] * k / 2), int(k / 2 + d[1] * k / 2)), 1.0, 1)
        mask = cv2.filter2D(mask, -1, kernel / kernel.sum())
        alpha = rng.uniform(0.35, 0.8)
        out += (255 - out) * alpha * np.clip(mask * 1.5, 0, 1)[:, :, None]
    elif kind == "crack":
        window = int(s * rng.uniform(0.2, 0.4))
        seeds = rng.uniform(0, window, (int(rng.integers(6, 14)), 2)).astype(np.float32)
        yy, xx = np.mgrid[:window, :window].astype(np.float32)
        dist = np.stack([np.hypot(xx - p[0], yy - p[1]) for p in seeds])
        two = np.sort(dist, axis=0)[:2]
        edges = np.clip(1.2 - (two[1] - two[0]) / max(0.8 * scale, 0.8), 0, 1)
        keep = np.zeros_like(edges)  # only some of the pattern's edges: a crack, not a net
        for p in seeds[: int(rng.integers(2, 5))]:
            keep = np.maximum(keep, (np.hypot(xx - p[0], yy - p[1]) < window * 0.45).astype(np.float32))
        edges *= cv2.GaussianBlur(keep, (0, 0), 2)
        y0, x0 = (np.clip(c - window / 2, 0, s - window)).astype(int)[::-1]
        mask = np.zeros((s, s), np.float32)
        mask[y0 : y0 + window, x0 : x0 + window] = edges
        out *= (1 - rng.uniform(0.5, 0.85) * mask)[:, :, None]
    elif kind == "stain":
        mask = _blob(s, c, rng, 0.05)
        lab = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2LAB).astype(np.float32)
        shift = np.array([rng.uniform(-25, 10), rng.uniform(-20, 30), rng.uniform(-10, 35)], np.float32)
        lab += shift * mask[:, :, None] * rng.uniform(0.5, 1.0)
        out = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR).astype(np.float32)
    elif kind == "pit":
        for _ in range(int(rng.integers(1, 6))):
            q = tuple(np.round(c + rng.normal(0, s * 0.04, 2)).astype(int))
            r = max(1, int(round(rng.uniform(1.5, 4.0) * scale)))
            rim = np.zeros((s, s), np.float32)
            cv2.circle(rim, q, r + 1, 1.0, max(1, int(scale)), cv2.LINE_AA)
            hole = np.zeros((s, s), np.float32)
            cv2.circle(hole, q, r, 1.0, -1, cv2.LINE_AA)
            out += (255 - out) * 0.45 * cv2.GaussianBlur(rim, (0, 0), 0.5)[:, :, None]
            out *= (1 - 0.8 * cv2.GaussianBlur(hole, (0, 0), 0.5))[:, :, None]
    elif kind == "burn":
        mask = _blob(s, c, rng, 0.03)
        soft = cv2.GaussianBlur(out, (0, 0), 3 * scale)
        grey = soft.mean(axis=2, keepdims=True)
        scorched = (0.5 * soft + 0.5 * grey) * rng.uniform(0.25, 0.6) + np.array([10, 20, 35], np.float32)
        out = out * (1 - mask[:, :, None]) + scorched * mask[:, :, None]
    else:
        raise ValueError(f"unknown class {kind!r}")
    return np.clip(out, 0, 255).astype(np.uint8)
