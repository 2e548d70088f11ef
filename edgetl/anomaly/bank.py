"""A memory bank of good patches, and how far a new image's patches lie from it (numpy only).

The PatchCore family (Roth et al., 2022): every position of the backbone's
intermediate feature maps describes a patch of the part. A good part's
patches are stored; a new image's patch is as anomalous as its distance to
the nearest stored one, and the image as anomalous as its worst patches.

Choices, and why (measured on the tuning generators; BENCHMARKS.md):
- **Two scales, the coarsest two** (`stride16`, `stride32` for Lite0): deep
  enough to tell a texture's own variation from a defect. The finer map is
  the grid; the coarser one is resized to it and concatenated. The two finest
  maps (stride 8 and 16), the PatchCore recipe and our first default, scored
  9 points of AUROC lower on the tuning set: on grass and gravel the natural
  variation between good stride-8 patches is as large as a defect, while the
  stride-32 map already tells them apart; even thin scratches scored higher.
- **No neighbourhood pooling by default** (`pool = 1`). PatchCore averages
  each position with its 3×3 neighbours so a patch describes its
  surroundings; on stride-16 and stride-32 maps a position already sees
  most of the part, and the average blurred small defects away (−4.6 points
  at 20 good images). A bank fitted with pooling records its size and is
  scored with it. Where pooling is used, the mean at the border is over the
  positions that exist (no zero padding): zero padding makes every border
  patch look unlike the interior, which in an earlier trial moved image
  AUROC by 20 points.
- **Scale balance**: each map is divided by its root-mean-square norm over
  the good patches, so the 112 channels at stride 16 count as much as the
  320 at stride 32.
- **Distances in units of the good parts' own spread** (`local_spread`).
  A good surface varies more in some places of feature space than in others
  (grass blades against the soil between them); a plain nearest distance
  calls a new patch in a loose region as anomalous as a defect. Each bank
  row carries how far good patches of *other* images lie from it (the k-th
  nearest, of a sample), and a patch scores min_j d(q, b_j) / r_j^power:
  how many of those spreads it lies from the good patches. On the tuning
  generators +2.6 / +2.5 points of image AUROC at 5 / 20 good images; held
  out, +5.4 / +4.7 (BENCHMARKS.md). The minimum of the ratio, not the ratio
  at the nearest row, so adding good rows can only lower a score (online
  enrolment's guarantee).
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

#: Fraction of an image's patch scores averaged into its image score.
TOP_FRACTION = 0.01


def local_mean(x: np.ndarray, size: int = 3) -> np.ndarray:
    """[C, h, w] -> the mean over each size×size neighbourhood that lies inside the map (size 1: the map itself)."""
    if size <= 1:
        return x
    pad = size // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    total = np.zeros_like(x, dtype=np.float32)
    h, w = x.shape[1:]
    for dy in range(size):
        for dx in range(size):
            total += padded[:, dy : dy + h, dx : dx + w]
    counts = np.zeros((h, w), np.float32)
    ones = np.pad(np.ones((h, w), np.float32), pad)
    for dy in range(size):
        for dx in range(size):
            counts += ones[dy : dy + h, dx : dx + w]
    return total / counts


def patch_features(
    maps: Mapping[str, np.ndarray], names: tuple[str, ...], scales: np.ndarray | None = None, pool: int = 1
) -> tuple[np.ndarray, tuple[int, int]]:
    """One image's patches [h*w, D] on the finest map's grid (h, w), from maps [C, h_i, w_i].

    `scales` (one per map) divide each map's features; None means 1. `pool`
    is the neighbourhood averaged around each position (1: none).
    """
    pooled = [local_mean(np.asarray(maps[name], np.float32), pool) for name in names]
    grid = max((p.shape[1:] for p in pooled), key=lambda s: s[0] * s[1])
    parts = []
    for i, p in enumerate(pooled):
        if p.shape[1:] != grid:
            p = _resize(p, grid)
        if scales is not None:
            p = p / scales[i]
        parts.append(p.reshape(p.shape[0], -1).T)
    return np.ascontiguousarray(np.concatenate(parts, axis=1), np.float32), grid


#: OpenCV resizes at most this many channels at once (CV_CN_MAX is smaller than many backbones' maps).
_RESIZE_CHANNELS = 64


def _resize(x: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """[C, h, w] -> [C, *grid], bilinear (smoother between neighbouring patches than nearest), in channel chunks."""
    parts = []
    for start in range(0, x.shape[0], _RESIZE_CHANNELS):
        chunk = np.ascontiguousarray(x[start : start + _RESIZE_CHANNELS].transpose(1, 2, 0))
        resized = cv2.resize(chunk, (grid[1], grid[0]), interpolation=cv2.INTER_LINEAR)
        parts.append(resized.reshape(grid[0], grid[1], -1).transpose(2, 0, 1))
    return np.concatenate(parts)


def map_scales(maps_per_image: list[Mapping[str, np.ndarray]], names: tuple[str, ...], pool: int = 1) -> np.ndarray:
    """Per map, the root-mean-square norm of its (pooled) patches over the given images."""
    scales = []
    for name in names:
        sq = [float((local_mean(np.asarray(m[name], np.float32), pool) ** 2).sum(axis=0).mean()) for m in maps_per_image]
        scales.append(max(np.sqrt(np.mean(sq)), 1e-6))
    return np.array(scales, np.float32)


def nearest_distances(
    queries: np.ndarray, bank: np.ndarray, bank_sq: np.ndarray | None = None, excluded: np.ndarray | None = None,
    row_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Euclidean distance of each query row [Q, D] to its nearest bank row [M, D]; `excluded` [M] bool columns are skipped.

    With `row_weights` [M] (1 / spread² per row, `AnomalyModel.row_weights`)
    each squared distance is multiplied by its row's weight before the
    minimum: the result is min_j d(q, b_j) · sqrt(w_j).
    """
    if bank_sq is None:
        bank_sq = np.einsum("md,md->m", bank, bank)
    d2 = queries @ bank.T  # [Q, M]: the one large product; BLAS does it
    d2 *= -2.0
    d2 += bank_sq[None, :]
    if row_weights is not None:
        # The query's own norm must be in before the weights (it is constant per row only without them).
        d2 += np.einsum("qd,qd->q", queries, queries)[:, None]
        np.maximum(d2, 0.0, out=d2)
        d2 *= row_weights[None, :]
    if excluded is not None:
        d2[:, excluded] = np.inf
    best = d2.min(axis=1)
    if row_weights is None:
        best += np.einsum("qd,qd->q", queries, queries)
    return np.sqrt(np.maximum(best, 0.0))


class BankSearch:
    """`nearest_distances` against one fixed bank, as one matrix product and one minimum per search.

    For a weighted row, w |q - b|² = q · (-2 w b) + |q|² w + w |b|²: with the
    query extended by [|q|², 1] and each row by [w, w |b|²] that is a single
    product, so the [Q, M] distance matrix is not walked four more times to
    add the norms and apply the weights (the walks cost ~15 % of a guided
    head's answer at 4,096 rows). The product only *finds* each query's
    nearest row; its distance to that row is then computed again from the
    difference (see `__call__`). Plain distances are w = 1; weights are positive.
    The bank must not change under it: anomaly models and good banks are
    rebuilt, not edited, when rows are added.
    """

    def __init__(self, bank: np.ndarray, row_weights: np.ndarray | None = None):
        bank = np.asarray(bank, np.float32)
        weights = np.ones(len(bank), np.float32) if row_weights is None else np.asarray(row_weights, np.float32)
        extended = np.empty((len(bank), bank.shape[1] + 2), np.float32)
        extended[:, :-2] = bank * (-2.0 * weights[:, None])
        extended[:, -2] = weights
        extended[:, -1] = weights * np.einsum("md,md->m", bank, bank)
        self._rows = extended

    def __call__(self, queries: np.ndarray, excluded: np.ndarray | None = None) -> np.ndarray:
        """Each query row's [Q, D] (weighted) distance to its nearest bank row; `excluded` [M] bool rows are skipped."""
        queries = np.asarray(queries, np.float32)
        extended = np.empty((len(queries), queries.shape[1] + 2), np.float32)
        extended[:, :-2] = queries
        extended[:, -2] = np.einsum("qd,qd->q", queries, queries)
        extended[:, -1] = 1.0
        d2 = extended @ self._rows.T  # [Q, M]: the one large product
        if excluded is not None:
            d2[:, excluded] = np.inf
        nearest = d2.argmin(axis=1)
        # The product's d² is |q|² - 2 q·b + |b|² in float32. For a query close to its row (a
        # labelled good patch and its own row in the bank) that is a difference of large, nearly
        # equal numbers, and what is left is rounding, which depends on how BLAS blocked the
        # product, i.e. on how many queries came at once: a patch searched alone and in a batch
        # got distances tens of percent apart, and a guided head's descriptor with them. So the
        # nearest row's distance is computed again from the difference: Q x D more work against
        # the product's Q x M x D, and the same distance alone or in any batch.
        rows = self._rows[nearest]
        weights = rows[:, -2]
        difference = queries - rows[:, :-2] / (-2.0 * weights[:, None])
        distances = np.sqrt(weights * np.einsum("qd,qd->q", difference, difference))
        if excluded is not None and excluded.all():
            distances[:] = np.inf  # no row left to be near
        return distances


def nearest_rows(
    queries: np.ndarray, bank: np.ndarray, bank_sq: np.ndarray | None = None, row_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From one product with the bank: each query's plain distance to its nearest row, that row's
    index, and its score as `nearest_distances` gives it with `row_weights` (the plain distance without)."""
    if bank_sq is None:
        bank_sq = np.einsum("md,md->m", bank, bank)
    d2 = queries @ bank.T
    d2 *= -2.0
    d2 += bank_sq[None, :]
    d2 += np.einsum("qd,qd->q", queries, queries)[:, None]
    np.maximum(d2, 0.0, out=d2)
    index = d2.argmin(axis=1)
    distance = np.sqrt(d2[np.arange(len(queries)), index])
    if row_weights is None:
        return distance, index, distance
    d2 *= row_weights[None, :]
    return distance, index, np.sqrt(d2.min(axis=1))


#: The spread's defaults (chosen on the tuning generators): the k-th nearest patch of another image, and the power of the unit.
SPREAD_K = 10
SPREAD_POWER = 0.75
#: Good patches a bank row's spread is measured against, at most: a sample (20 images in 8 views are 31,000 patches).
SPREAD_SAMPLE = 12_000
#: Bank rows per block of the spread's search: 512 rows x 12,000 patches is a 25 MB distance matrix.
_SPREAD_BLOCK = 512


def local_spread(
    bank: np.ndarray, bank_origin: np.ndarray, patches: np.ndarray, origin: np.ndarray, k: int, seed: int = 0, sample: int | None = None,
) -> np.ndarray | None:
    """Per bank row, the distance to its k-th nearest good patch of *another* image (of a sample of `patches`).

    How far good patches stray around that row: the unit its distances are
    measured in. Patches of the row's own image are left out (its flips and
    turns lie close by and say nothing of how other good parts vary), as
    leave-one-out scoring leaves them out. None when the patches come from
    one image (nothing to measure against).
    """
    rng = np.random.default_rng(seed)
    sample = sample or SPREAD_SAMPLE
    chosen = rng.choice(len(patches), sample, replace=False) if len(patches) > sample else np.arange(len(patches))
    reference, reference_origin = patches[chosen], origin[chosen]
    if len(np.unique(reference_origin)) < 2:
        return None
    reference_sq = np.einsum("nd,nd->n", reference, reference)
    spread = np.empty(len(bank), np.float32)
    for start in range(0, len(bank), _SPREAD_BLOCK):
        rows, rows_origin = bank[start : start + _SPREAD_BLOCK], bank_origin[start : start + _SPREAD_BLOCK]
        d2 = rows @ reference.T
        d2 *= -2.0
        d2 += reference_sq[None, :]
        d2 += np.einsum("md,md->m", rows, rows)[:, None]
        d2[rows_origin[:, None] == reference_origin[None, :]] = np.inf
        kth = min(k, int(np.isfinite(d2).sum(axis=1).min())) - 1
        spread[start : start + len(rows)] = np.sqrt(np.maximum(np.partition(d2, kth, axis=1)[:, kth], 0.0))
    # A row that sits on top of other images' patches would get a zero unit: floor it at a small part of the typical one.
    return np.maximum(spread, 0.05 * float(np.median(spread)) + 1e-6)


def image_score(patch_scores: np.ndarray) -> float:
    """The mean of the worst TOP_FRACTION of an image's patch scores (at least one)."""
    k = max(1, round(len(patch_scores) * TOP_FRACTION))
    return float(np.partition(patch_scores, len(patch_scores) - k)[-k:].mean())


def random_projection(patches: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Patches [N, D] projected to [N, dim] by a Gaussian matrix scaled by 1/sqrt(dim), in float32; unchanged if D <= dim.

    float32 matters: the coreset's loop reads all of it once per pick, and
    NumPy 2 makes a float32 matrix divided by a float64 scalar float64, which
    made the projection 40 MB instead of 20 for a guided head's 78,400 good
    patches (past this CPU's 32 MB L3): the coreset took 7.1 s instead of 1.4.
    """
    if patches.shape[1] <= dim:
        return patches
    projection = rng.standard_normal((patches.shape[1], dim)).astype(np.float32)
    projection *= np.float32(1.0 / np.sqrt(dim))  # in place: the matrix stays float32
    return np.asarray(patches, np.float32) @ projection


def greedy_coreset(patches: np.ndarray, size: int, seed: int = 0, projection_dim: int = 64) -> tuple[np.ndarray, float]:
    """Indices of `size` rows chosen by greedy k-centre, and the covering radius left.

    Distances are computed in a random projection to `projection_dim`
    dimensions (Johnson–Lindenstrauss keeps them to a few per cent), which
    makes the selection several times cheaper; the radius is then measured
    in the full space.
    """
    n = len(patches)
    if size >= n:
        return np.arange(n), 0.0
    rng = np.random.default_rng(seed)
    z = random_projection(patches, projection_dim, rng)
    # Squared distances by |z|^2 - 2 z.c + |c|^2: one matrix-vector product per pick, no [n, d] temporaries.
    z_sq = np.einsum("nd,nd->n", z, z)
    chosen = np.empty(size, np.int64)
    chosen[0] = int(rng.integers(n))
    nearest = z_sq - 2.0 * (z @ z[chosen[0]]) + z_sq[chosen[0]]
    for i in range(1, size):
        chosen[i] = int(nearest.argmax())
        np.minimum(nearest, z_sq - 2.0 * (z @ z[chosen[i]]) + z_sq[chosen[i]], out=nearest)
    kept = patches[chosen]
    radius = float(np.percentile(nearest_distances(patches[rng.choice(n, min(n, 4096), replace=False)], kept), 99))
    return np.sort(chosen), radius


def spread_weights(spread: np.ndarray | None, power: float, rows: int) -> tuple[np.ndarray | None, float, np.ndarray | None]:
    """A bank's spread checked against its `rows`, its power, and the row weights `nearest_distances` takes (1 / spread^(2 power)).

    (None, 0.0, None) when there is no spread or the power is 0: plain
    distances. Raises ValueError for a spread that cannot belong to the bank.
    """
    if spread is None or power <= 0:
        return None, 0.0, None
    spread = np.asarray(spread, np.float32)
    if spread.shape != (rows,) or not np.all(np.isfinite(spread)) or not np.all(spread > 0):
        raise ValueError(f"the bank's spread holds {spread.shape} values for {rows} patches, or non-positive ones")
    return spread, float(power), spread ** (-2.0 * float(power))


def anomaly_map(patch_scores: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Patch scores [h*w] as the low-resolution map [h, w], smoothed a little as PatchCore does (σ = 1 patch)."""
    grid_scores = patch_scores.reshape(grid).astype(np.float32)
    return cv2.GaussianBlur(grid_scores, (0, 0), sigmaX=1.0, borderType=cv2.BORDER_REFLECT)
