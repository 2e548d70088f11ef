"""Synthetic defect images for tests, demos and benchmarks.

Real texture photographs (the ones scikit-image ships: brick, grass, gravel)
with defects our own code draws on them: scratches, cracks, stains, pits and
burns. Each image is a random crop of the texture, flipped and lit a little
differently, so a classifier must learn the defect, not the crop.

    write_dataset(Path("defects"), texture="brick", per_class=50, size=224)
    # defects/{ok,scratch,crack,stain,pit,burn}/*.png  (an ImageFolder tree)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DEFECTS = ("scratch", "crack", "stain", "pit", "burn")
CLASSES = ("ok", *DEFECTS)
TEXTURES = ("brick", "grass", "gravel")


def texture(name: str) -> np.ndarray:
    """A texture photo as BGR uint8 (from scikit-image's bundled data, no download)."""
    from skimage import data

    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; choose from {TEXTURES}")
    img = getattr(data, name)()
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img[:, :, :3][:, :, ::-1])


def _crop(tex: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = tex.shape[:2]
    side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = cv2.resize(tex[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.5:
        img = img[::-1]
    gain, bias = rng.uniform(0.85, 1.15), rng.uniform(-15, 15)
    return np.clip(img.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def _point(size, rng, margin=0.15):
    return rng.uniform(size * margin, size * (1 - margin), 2)


def draw_defect(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Draw one defect of `kind` on a copy of `img` (BGR uint8, square)."""
    out = img.copy()
    s = img.shape[0]
    if kind == "scratch":  # a thin, straight, bright or dark line
        p = _point(s, rng)
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.3, 0.6) * s
        d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
        color = (235, 235, 235) if rng.random() < 0.5 else (20, 20, 20)
        cv2.line(out, tuple((p - d).astype(int)), tuple((p + d).astype(int)), color, max(1, s // 150), cv2.LINE_AA)
    elif kind == "crack":  # a dark, jagged random walk
        p = _point(s, rng)
        angle = rng.uniform(0, 2 * np.pi)
        pts = [p]
        for _ in range(int(rng.integers(10, 18))):
            angle += rng.normal(0, 0.5)
            pts.append(pts[-1] + np.array([np.cos(angle), np.sin(angle)]) * s * 0.03)
        cv2.polylines(out, [np.array(pts, np.int32)], False, (15, 15, 25), max(1, s // 110), cv2.LINE_AA)
    elif kind == "stain":  # a soft, tinted blotch
        mask = np.zeros(img.shape[:2], np.float32)
        c = _point(s, rng)
        axes = (int(s * rng.uniform(0.08, 0.16)), int(s * rng.uniform(0.05, 0.12)))
        cv2.ellipse(mask, tuple(c.astype(int)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), s * 0.02)[:, :, None]
        tint = np.array([40, 120, 150], np.float32)  # brownish, in BGR
        out = (out * (1 - 0.6 * mask) + tint * 0.6 * mask).astype(np.uint8)
    elif kind == "pit":  # a cluster of small dark holes
        c = _point(s, rng)
        for _ in range(int(rng.integers(3, 7))):
            q = c + rng.normal(0, s * 0.04, 2)
            cv2.circle(out, tuple(q.astype(int)), max(2, int(s * rng.uniform(0.01, 0.02))), (10, 10, 10), -1, cv2.LINE_AA)
    elif kind == "burn":  # a dark scorch with a darker core
        mask = np.zeros(img.shape[:2], np.float32)
        c = _point(s, rng)
        cv2.circle(mask, tuple(c.astype(int)), int(s * rng.uniform(0.07, 0.12)), 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), s * 0.03)[:, :, None]
        out = (out * (1 - 0.75 * mask)).astype(np.uint8)
    elif kind != "ok":
        raise ValueError(f"unknown defect {kind!r}; choose from {CLASSES}")
    return out


def make_images(texture_name: str, classes=CLASSES, per_class: int = 20, size: int = 224, seed: int = 0):
    """Yield (class, BGR image) pairs, `per_class` of each, deterministic for a seed."""
    tex = texture(texture_name)
    rng = np.random.default_rng(seed)
    for kind in classes:
        for _ in range(per_class):
            yield kind, draw_defect(_crop(tex, size, rng), kind, rng)


def write_dataset(root: Path, texture_name: str, classes=CLASSES, per_class: int = 20, size: int = 224, seed: int = 0, ext: str = ".png") -> Path:
    """Write an ImageFolder tree root/<class>/<n>.png and return root."""
    counts: dict[str, int] = {}
    for kind, img in make_images(texture_name, classes, per_class, size, seed):
        counts[kind] = counts.get(kind, 0) + 1
        path = Path(root) / kind / f"{texture_name}-{seed}-{counts[kind]:04d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), img)
    return Path(root)


if __name__ == "__main__":  # python -m edgetl.synthetic OUT TEXTURE [PER_CLASS] [SIZE]
    import sys

    out, tex = Path(sys.argv[1]), sys.argv[2]
    write_dataset(out, tex, per_class=int(sys.argv[3]) if len(sys.argv) > 3 else 20, size=int(sys.argv[4]) if len(sys.argv) > 4 else 224)
    print(out)
