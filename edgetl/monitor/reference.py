"""An adapter's drift reference: how its labelled images look to it, in a few numbers.

Fitted by the training process from the *embedding* of every labelled image
(the vector the adapter's classifier reads: a head's standardised pooled
features, a LoRA model's normalised pooled features), stored as
``drift.npz`` beside the adapter (hashed in its manifest like every file),
and read by the server with numpy only.

Per image, a **drift score**: how far the embedding lies from the nearest
class of the reference. The embedding is projected on the reference's first
k principal components; with what those components cannot explain (the log
residual) that makes k+1 coordinates, each standardised by its spread
within the class, and the score is the log of the mean of two mean squares,
the components' and the residual's (about 0 for an image like the
reference, growing as images move away).

- Nearest *class*, not the reference as a whole: labelled sets are balanced
  on purpose while a line is mostly good parts, so a whole-set reference
  would call a normal day's class mix a drift. (A change of the class mix
  is watched separately, against the line's own first images.)
- The residual catches what is new (another material, noise, dirt on the
  lens), the components catch what moved (light, contrast, focus).
- The reference's own scores are computed **out of sample** (k-fold
  cross-fit: basis and class statistics fitted without the image scored),
  so they spread as a new image's score does. In-sample scores are smaller,
  and every stable line would look drifted against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = "drift.npz"
COMPONENTS = 8
FOLDS = 10
#: Images the reference is fitted on at most (a stratified sample beyond it):
#: the fit is O(N^2 D), and a few hundred images pin these statistics down.
MAX_IMAGES = 600
#: Shrink each class's spread towards the pooled one, as if with this many
#: pooled images: 10 labels per class give noisy per-class spreads.
SHRINK = 5.0
#: The reference test (a window against the labelled images themselves) needs
#: this many: with fewer, labelled images are too alike (one afternoon, one lot)
#: to stand for a line, and a 30-image reference warned on a stable line in
#: tests. Below it, windows are compared with the line's own first images only.
MIN_REFERENCE_IMAGES = 100
_EPS = 1e-6


def _fit(z: np.ndarray, y: np.ndarray, num_classes: int, components: int) -> dict[str, np.ndarray]:
    center = z.mean(axis=0)
    x = z - center
    # PCA by the Gram matrix's eigenvectors: N is far smaller than D here.
    gram = x @ x.T
    values, vectors = np.linalg.eigh(gram.astype(np.float64))
    order = np.argsort(values)[::-1][:components]
    values, vectors = values[order], vectors[:, order]
    keep = values > values[0] * 1e-9 if len(values) else values > 0
    basis = (x.T @ vectors[:, keep]) / np.sqrt(values[keep])  # [D, k], orthonormal columns
    projected, residual = _coordinates(x, basis)
    coords = np.concatenate([projected, residual[:, None]], axis=1)  # [N, k+1]
    pooled_var = np.zeros(coords.shape[1])
    means = np.zeros((num_classes, coords.shape[1]))
    variances = np.zeros((num_classes, coords.shape[1]))
    counts = np.zeros(num_classes)
    for c in range(num_classes):
        rows = coords[y == c]
        counts[c] = len(rows)
        if len(rows):
            means[c] = rows.mean(axis=0)
            variances[c] = rows.var(axis=0)
            pooled_var += ((rows - means[c]) ** 2).sum(axis=0)
    pooled_var = pooled_var / max(1.0, counts.sum() - (counts > 0).sum()) + _EPS
    spread = np.sqrt((counts[:, None] * variances + SHRINK * pooled_var) / (counts[:, None] + SHRINK))
    return {
        "center": center.astype(np.float32),
        "basis": basis.astype(np.float32),
        "class_mean": means.astype(np.float32),
        "class_spread": spread.astype(np.float32),
        "present": counts > 0,
    }


def _coordinates(x: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred embeddings [N, D] -> components [N, k] and log residual [N]."""
    projected = x @ basis
    residual = np.maximum((x * x).sum(axis=1) - (projected * projected).sum(axis=1), 0.0)
    return projected, np.log(residual + _EPS)


def _padded(fit: dict[str, np.ndarray], components: int) -> dict[str, np.ndarray]:
    """A fit with `components` components, zero ones added where the data had fewer (tiny label sets),
    so every fold's coordinates line up."""
    pad = components - fit["basis"].shape[1]
    if pad <= 0:
        return fit
    k = len(fit["class_mean"])
    widen = lambda a, fill: np.concatenate([a[:, :-1], np.full((k, pad), fill, a.dtype), a[:, -1:]], axis=1)
    return {**fit, "basis": np.pad(fit["basis"], ((0, 0), (0, pad))), "class_mean": widen(fit["class_mean"], 0.0), "class_spread": widen(fit["class_spread"], 1.0)}


def _scores(x: np.ndarray, fit: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Drift scores [N] of centred embeddings against a fit, and their standardised
    coordinates [N, k+1] relative to the nearest class."""
    projected, residual = _coordinates(x, fit["basis"])
    coords = np.concatenate([projected, residual[:, None]], axis=1)
    e = (coords[:, None, :] - fit["class_mean"][None]) / fit["class_spread"][None]  # [N, K, k+1]
    # What the basis explains and what it cannot weigh the same: averaged in with the k
    # components, a residual that triples (another material) would be diluted k times.
    squares = e * e
    per_class = np.log(0.5 * (squares[:, :, :-1].mean(axis=2) + squares[:, :, -1]) + _EPS)
    per_class[:, ~fit["present"]] = np.inf
    nearest = per_class.argmin(axis=1)
    rows = np.arange(len(x))
    return per_class[rows, nearest], e[rows, nearest], nearest


def fit_reference(z: np.ndarray, y: np.ndarray, num_classes: int, components: int = COMPONENTS, folds: int = FOLDS, seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of ``drift.npz`` from embeddings [N, D] and their labels [N] (label order kept).

    ``scores`` are the reference images' out-of-sample drift scores, in the
    order the images were labelled (calibration reads chunks of them).
    """
    z = np.asarray(z, np.float64)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    if len(z) > MAX_IMAGES:
        keep = np.sort(rng.permutation(len(z))[:MAX_IMAGES])
        z, y = z[keep], y[keep]
    n = len(z)
    if n < 4:
        raise ValueError(f"a drift reference needs at least 4 images, got {n}")
    components = max(1, min(components, n - 2))
    fold = np.empty(n, dtype=int)
    fold[rng.permutation(n)] = np.arange(n) % min(folds, n)
    scores = np.empty(n)
    coords = np.empty((n, components + 1))
    for f in np.unique(fold):
        out = fold == f
        part = _fit(z[~out], y[~out], num_classes, components)
        scores[out], coords[out], _ = _scores(z[out] - part["center"], _padded(part, components))
    full = _padded(_fit(z, y, num_classes, components), components)
    finite = np.isfinite(scores)  # an image whose class was absent from its fold's fit
    return {**full, "scores": scores[finite].astype(np.float32), "coords": coords[finite].astype(np.float32)}


@dataclass
class DriftReference:
    """A loaded reference: per-image scores (numpy, microseconds) and its calibration."""

    center: np.ndarray
    basis: np.ndarray
    class_mean: np.ndarray
    class_spread: np.ndarray
    present: np.ndarray
    scores: np.ndarray
    coords: np.ndarray

    FIELDS = ("center", "basis", "class_mean", "class_spread", "present", "scores", "coords")

    @classmethod
    def load(cls, path: Path) -> DriftReference:
        with np.load(Path(path)) as data:
            return cls(**{name: data[name] for name in cls.FIELDS})

    @classmethod
    def of(cls, arrays: dict[str, np.ndarray]) -> DriftReference:
        return cls(**{name: np.asarray(arrays[name]) for name in cls.FIELDS})

    def __post_init__(self) -> None:
        self._fit = {"basis": self.basis, "class_mean": self.class_mean, "class_spread": self.class_spread, "present": self.present.astype(bool)}
        #: The reference test's yardstick: the out-of-sample scores' mean and calibrated spread.
        self.testable = len(self.scores) >= MIN_REFERENCE_IMAGES
        self.mean = float(self.scores.mean())
        self.spread = calibrated_spread(self.scores)

    @property
    def dim(self) -> int:
        return int(self.center.shape[0])

    def observe(self, embedding: np.ndarray) -> np.ndarray:
        """[score, coordinates...] of one embedding [D] (the coordinates relative to its nearest class): what the window tests average."""
        x = (np.asarray(embedding, np.float32).reshape(1, -1) - self.center).astype(np.float32, copy=False)
        score, coords, _ = _scores(x, self._fit)
        return np.concatenate([score, coords[0]])

    def score(self, embedding: np.ndarray) -> float:
        """The drift score of one embedding [D]."""
        return float(self.observe(embedding)[0])


def calibrated_spread(scores: np.ndarray) -> float:
    """The per-image spread of the drift score that a window mean is judged by.

    The plain standard deviation assumes images are independent. Labelled
    images come in batches (a shift, a lot, a day), and so do a line's, so
    the spread is also read from the reference itself: the standard
    deviation of the means of consecutive chunks, scaled back to one image.
    The larger of the two is used, so a reference whose chunks differ more
    than chance allows gives a quieter monitor, not a noisier one.
    """
    scores = np.asarray(scores, np.float64)
    sd = float(scores.std(ddof=1)) if len(scores) > 1 else 1.0
    size = max(5, len(scores) // 10)
    chunks = len(scores) // size
    if chunks >= 4:
        means = scores[: chunks * size].reshape(chunks, size).mean(axis=1)
        sd = max(sd, float(means.std(ddof=1)) * np.sqrt(size))
    return max(sd, 1e-3)
