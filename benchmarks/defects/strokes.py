"""Generator "strokes": vector-drawn defects with other shapes than edgetl.synthetic's.

- scratch: a curved quadratic Bézier stroke, 1–2 px, a lighter or darker shade of the surface;
- crack: a branching path from midpoint displacement, dark, with a blurred halo;
- stain: a noise-shaped blob of a random tint (rust, oil, water), sometimes with a drying ring;
- pit: one to four shaded craters (shadow on one side, light on the other);
- burn: a scorch whose edge follows angular noise, darkened and tinted brown at its rim.
Defects may sit anywhere, edges included, and vary in size and contrast (thin and faint ones too).
"""

from __future__ import annotations

import cv2
import numpy as np


def _where(s: int, rng, margin: float = 0.06) -> np.ndarray:
    return rng.uniform(s * margin, s * (1 - margin), 2)


def _stroke_mask(s: int, points: np.ndarray, width: float, blur: float = 0.6) -> np.ndarray:
    mask = np.zeros((s * 4, s * 4), np.uint8)  # drawn at 4x, then reduced: sub-pixel widths
    cv2.polylines(mask, [np.round(points * 4).astype(np.int32)], False, 255, max(1, int(round(width * 4))), cv2.LINE_AA)
    mask = cv2.resize(mask, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return cv2.GaussianBlur(mask, (0, 0), blur) if blur else mask


def _bezier(p0, p1, p2, n: int = 64) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _displaced(a: np.ndarray, b: np.ndarray, rng, depth: int = 6, roughness: float = 0.35) -> np.ndarray:
    points = [a, b]
    for level in range(depth):
        out = [points[0]]
        for p, q in zip(points, points[1:]):
            mid = (p + q) / 2
            normal = np.array([-(q - p)[1], (q - p)[0]])
            mid = mid + normal * rng.normal(0, roughness / (1 + level * 0.3))
            out += [mid, q]
        points = out
    return np.array(points)


def draw(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    s = img.shape[0]
    out = img.astype(np.float32)
    if kind == "ok":
        return img
    if kind == "scratch":
        p0 = _where(s, rng)
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.2, 0.7) * s
        d = np.array([np.cos(angle), np.sin(angle)]) * length
        p2 = np.clip(p0 + d, 0, s - 1)
        bend = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1) * rng.uniform(-0.25, 0.25) * length
        mask = _stroke_mask(s, _bezier(p0, (p0 + p2) / 2 + bend, p2), rng.uniform(0.7, 2.0) * s / 224)
        out += (rng.choice([-1, 1]) * rng.uniform(30, 95)) * mask[:, :, None]
    elif kind == "crack":
        a = _where(s, rng)
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.5) * s
        b = np.clip(a + np.array([np.cos(angle), np.sin(angle)]) * length, 0, s - 1)
        paths = [_displaced(a, b, rng)]
        for _ in range(int(rng.integers(0, 4))):  # branches leave the main path at an angle
            start = paths[0][int(rng.integers(len(paths[0]) // 4, len(paths[0])))]
            turn = angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
            paths.append(_displaced(start, np.clip(start + np.array([np.cos(turn), np.sin(turn)]) * length * rng.uniform(0.2, 0.5), 0, s - 1), rng, 5))
        width = rng.uniform(1.0, 2.6) * s / 224
        mask = np.maximum.reduce([_stroke_mask(s, p, width * (1 if i == 0 else 0.7)) for i, p in enumerate(paths)])
        halo = cv2.GaussianBlur(mask, (0, 0), 1.5 * s / 224)
        out *= (1 - rng.uniform(0.55, 0.85) * mask - 0.2 * halo)[:, :, None]
    elif kind == "stain":
        noise = cv2.GaussianBlur(rng.normal(0, 1, (s, s)).astype(np.float32), (0, 0), s * 0.05)
        yy, xx = np.mgrid[:s, :s].astype(np.float32)
        c, r = _where(s, rng, 0.1), s * rng.uniform(0.08, 0.2)
        field = 1 - np.hypot(yy - c[1], xx - c[0]) / r + noise / (noise.std() + 1e-6) * 0.35
        mask = cv2.GaussianBlur(np.clip(field * 3, 0, 1), (0, 0), s * rng.uniform(0.005, 0.02))
        if rng.random() < 0.4:  # a drying ring: the rim darker than the middle
            mask = np.clip(mask * 0.5 + cv2.Laplacian(mask, cv2.CV_32F, ksize=5) * -2, 0, 1)
        tint = np.array([[40, 70, 150], [25, 30, 35], [170, 150, 120], [60, 140, 120]][int(rng.integers(0, 4))], np.float32)
        alpha = rng.uniform(0.25, 0.6)
        out = out * (1 - alpha * mask[:, :, None]) + tint * alpha * mask[:, :, None]
    elif kind == "pit":
        c = _where(s, rng)
        light = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[:s, :s].astype(np.float32)
        for _ in range(int(rng.integers(1, 5))):
            q = c + rng.normal(0, s * 0.05, 2)
            radius = rng.uniform(1.5, 4.5) * s / 224
            dx, dy = xx - q[0], yy - q[1]
            inside = np.clip(1 - np.hypot(dx, dy) / radius, 0, 1)
            shade = (dx * np.cos(light) + dy * np.sin(light)) / radius  # the far wall catches the light
            out *= (1 - 0.75 * inside + 0.35 * inside * shade)[:, :, None]
    elif kind == "burn":
        yy, xx = np.mgrid[:s, :s].astype(np.float32)
        c, r = _where(s, rng, 0.1), s * rng.uniform(0.06, 0.15)
        theta = np.arctan2(yy - c[1], xx - c[0])
        wobble = sum(rng.uniform(0, 0.25) * np.cos(k * theta + rng.uniform(0, 6.3)) for k in (2, 3, 5))
        d = np.hypot(yy - c[1], xx - c[0]) / (r * (1 + wobble))
        core = np.clip(1 - d, 0, 1) ** 0.7
        rim = np.exp(-((d - 1) ** 2) / 0.08)
        out *= (1 - rng.uniform(0.45, 0.8) * core)[:, :, None]
        out = out * (1 - 0.35 * rim[:, :, None]) + np.array([30, 60, 110], np.float32) * 0.35 * rim[:, :, None]
    else:
        raise ValueError(f"unknown class {kind!r}")
    return np.clip(out, 0, 255).astype(np.uint8)
