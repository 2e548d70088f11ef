"""Generator "relief": defects as changes of the surface's height and albedo, lit from a random side.

Nothing is painted: a height map is carved and the image is shaded by its
normals under a light whose direction differs per image, so a groove shows a
bright and a dark edge, and a pit a shadow and a highlight.

- scratch: a shallow straight or once-bent groove, narrow, even depth;
- crack: a deep, narrow groove along a jagged random walk that forks;
- stain: an albedo change (a tinted, low-frequency blob), no relief;
- pit: a cluster of Gaussian depressions;
- burn: darker albedo and a smoothed (melted) texture inside an irregular region.
"""

from __future__ import annotations

import cv2
import numpy as np


def _segment_distance(xx, yy, a, b):
    ab = b - a
    t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(ab @ ab, 1e-6), 0, 1)
    return np.hypot(xx - (a[0] + t * ab[0]), yy - (a[1] + t * ab[1]))


def _shade(img: np.ndarray, height: np.ndarray, rng, strength: float) -> np.ndarray:
    gy, gx = np.gradient(height)
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.1)
    light = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)])
    normal = np.stack([-gx, -gy, np.ones_like(gx)], -1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    lit = normal @ light
    return img * (1 + strength * (lit - light[2]))[:, :, None]


def draw(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    s = img.shape[0]
    scale = s / 224
    out = img.astype(np.float32)
    if kind == "ok":
        return img
    yy, xx = np.mgrid[:s, :s].astype(np.float32)
    height = np.zeros((s, s), np.float32)
    c = rng.uniform(s * 0.06, s * 0.94, 2)
    if kind == "scratch":
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.25, 0.65) * s
        d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
        points = [c - d, c + d]
        if rng.random() < 0.4:  # bent once, as a tool that slipped
            bend = c + np.array([-d[1], d[0]]) * rng.uniform(-0.3, 0.3)
            points = [c - d, bend, c + d]
        dist = np.minimum.reduce([_segment_distance(xx, yy, a, b) for a, b in zip(points, points[1:])])
        width = rng.uniform(0.6, 1.4) * scale
        height -= rng.uniform(1.5, 4.0) * np.exp(-((dist / width) ** 2))
        out = _shade(out, height, rng, rng.uniform(1.5, 3.5))
    elif kind == "crack":
        steps, angle = int(rng.integers(14, 28)), rng.uniform(0, 2 * np.pi)
        paths, p = [[c]], c
        for _ in range(steps):
            angle += rng.normal(0, 0.7)
            p = p + np.array([np.cos(angle), np.sin(angle)]) * s * rng.uniform(0.01, 0.025)
            paths[0].append(p)
            if rng.random() < 0.08:  # a fork
                q, a2 = p, angle + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
                fork = [q]
                for _ in range(int(rng.integers(3, 9))):
                    a2 += rng.normal(0, 0.6)
                    q = q + np.array([np.cos(a2), np.sin(a2)]) * s * 0.015
                    fork.append(q)
                paths.append(fork)
        mask = np.zeros((s, s), np.float32)
        for path in paths:
            cv2.polylines(mask, [np.array(path, np.int32)], False, 1.0, max(1, int(round(rng.uniform(0.8, 2.2) * scale))), cv2.LINE_AA)
        height -= rng.uniform(4, 9) * cv2.GaussianBlur(mask, (0, 0), 0.6)
        out = _shade(out, height, rng, rng.uniform(1.0, 2.0)) * (1 - 0.45 * mask[:, :, None])
    elif kind == "pit":
        for _ in range(int(rng.integers(2, 7))):
            q = c + rng.normal(0, s * 0.035, 2)
            sigma = rng.uniform(1.0, 3.0) * scale
            height -= rng.uniform(3, 8) * np.exp(-((xx - q[0]) ** 2 + (yy - q[1]) ** 2) / (2 * sigma**2))
        out = _shade(out, height, rng, rng.uniform(2.0, 4.0))
    elif kind == "stain":
        blob = np.zeros((s, s), np.float32)
        for _ in range(int(rng.integers(2, 6))):
            q = c + rng.normal(0, s * 0.04, 2)
            sig = s * rng.uniform(0.03, 0.08)
            blob += np.exp(-((xx - q[0]) ** 2 + (yy - q[1]) ** 2) / (2 * sig**2))
        blob = np.clip(blob, 0, 1)
        albedo = np.array(rng.uniform([0.55, 0.6, 0.75], [0.85, 0.95, 1.1]), np.float32)[::-1] if rng.random() < 0.5 else rng.uniform(0.6, 1.25, 3).astype(np.float32)
        out *= 1 + (albedo - 1) * blob[:, :, None]
    elif kind == "burn":
        theta = np.arctan2(yy - c[1], xx - c[0])
        r = s * rng.uniform(0.05, 0.13) * (1 + 0.3 * np.sin(3 * theta + rng.uniform(0, 6.3)) * rng.uniform(0.3, 1))
        inside = np.clip(1.3 - np.hypot(xx - c[0], yy - c[1]) / r, 0, 1)
        inside = cv2.GaussianBlur(inside, (0, 0), 2 * scale)
        melted = cv2.GaussianBlur(out, (0, 0), 2.5 * scale)
        out = out * (1 - inside[:, :, None]) + melted * inside[:, :, None]
        out *= (1 - rng.uniform(0.4, 0.75) * inside)[:, :, None]
    else:
        raise ValueError(f"unknown class {kind!r}")
    return np.clip(out, 0, 255).astype(np.uint8)
