"""An anomaly adapter: a bank of good patches with its threshold, fitted, saved, loaded and served.

`fit` builds it from the backbone's feature maps of good images (each image
in one or more views), `AnomalyModel.answer` answers one image in the serving
process (numpy, no torch), and `AnomalyModel` is also the task's head: it
turns backbone outputs into [p_good, p_anomaly] like any head, with 0.5 at
the threshold, so the rest of the serving path (top classes, review capture,
drift) treats an anomaly task like a two-class one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.anomaly.bank import (
    BankSearch,
    anomaly_map,
    greedy_coreset,
    image_score,
    SPREAD_K,
    SPREAD_POWER,
    local_spread,
    map_scales,
    patch_features,
    spread_weights,
)
from edgetl.anomaly.threshold import Calibration, calibrate

FILE = "bank.npz"
DEFAULTS = {"max_patches": 4096, "views": 8, "false_alarm_rate": 0.01, "seed": 0, "pool": 1, "spread_k": SPREAD_K, "spread_power": SPREAD_POWER}
#: Banks saved before `pool` was recorded were fitted with a 3×3 neighbourhood mean.
LEGACY_POOL = 3
#: Fewer good images than this cannot be calibrated (each is scored against the others).
MIN_GOOD = 2
#: Below this many, the job summary warns: the distribution-free false-alarm bound is 1/(n+1) at best.
RECOMMENDED_GOOD = 10


@dataclass(frozen=True)
class AnomalyAnswer:
    """One image's answer: its score, the threshold, the verdict, and the low-resolution map."""

    score: float
    threshold: float
    anomalous: bool
    map: np.ndarray  # [h, w] patch scores, smoothed


class AnomalyModel:
    """A bank of good patches [M, D] on maps `inputs` (each position averaged over a `pool`×`pool` neighbourhood), with its calibration.

    `spread` [M] is each row's local spread of good patches (bank.local_spread);
    a patch's score is then min_j d(q, b_j) / spread_j^spread_power. Without
    it (banks saved before 2026-12-04, or `spread_power = 0`) the score is
    the plain nearest distance.
    """

    def __init__(
        self, inputs: tuple[str, ...], scales: np.ndarray, bank: np.ndarray, radius: float, calibration: Calibration,
        origin: np.ndarray | None = None, loo: np.ndarray | None = None, pool: int = 1,
        spread: np.ndarray | None = None, spread_power: float = 0.0,
    ):
        self.inputs = tuple(inputs)
        self.pool = int(pool)
        self.scales = np.asarray(scales, np.float32)
        self.bank = np.ascontiguousarray(bank, np.float32)
        self.bank_sq = np.einsum("md,md->m", self.bank, self.bank)
        self.radius = float(radius)
        self.calibration = calibration
        #: Which enrolled image each bank row came from (training only: leave-one-out needs it).
        self.origin = origin
        #: The enrolled images' leave-one-out scores: the calibration's evidence, grown by online enrolment.
        self.loo = None if loo is None else np.asarray(loo, np.float64)
        # row_weights: what each row's squared distance is multiplied by (nearest_distances, BankSearch).
        self.spread, self.spread_power, self.row_weights = spread_weights(spread, spread_power, len(self.bank))
        self.search = BankSearch(self.bank, self.row_weights)

    def derived(self, *, bank: np.ndarray | None = None, spread: np.ndarray | None = None, calibration: Calibration | None = None, loo: np.ndarray | None = None) -> AnomalyModel:
        """A copy with some parts replaced (online enrolment grows the bank, an operator moves the threshold)."""
        return AnomalyModel(
            self.inputs, self.scales, self.bank if bank is None else bank, self.radius, calibration or self.calibration,
            loo=self.loo if loo is None else loo, pool=self.pool, spread=self.spread if spread is None else spread, spread_power=self.spread_power,
        )

    # -- serving -----------------------------------------------------------
    def patch_scores(self, maps: Mapping[str, np.ndarray]) -> tuple[np.ndarray, tuple[int, int]]:
        patches, grid = self.patches(maps)
        return self.scores_of(patches), grid

    def scores_of(self, patches: np.ndarray, excluded: np.ndarray | None = None) -> np.ndarray:
        """Patch scores [P] of patches [P, D] described as this bank describes them; `excluded` rows are skipped."""
        return self.search(patches, excluded)

    def patches(self, maps: Mapping[str, np.ndarray]) -> tuple[np.ndarray, tuple[int, int]]:
        """One image's patches as this bank describes them, and their grid."""
        return patch_features(maps, self.inputs, self.scales, self.pool)

    def answer(self, maps: Mapping[str, np.ndarray]) -> AnomalyAnswer:
        """Maps of one image ([C, h, w] each) -> its answer."""
        scores, grid = self.patch_scores(maps)
        score = image_score(scores)
        return AnomalyAnswer(score, self.calibration.threshold, score > self.calibration.threshold, anomaly_map(scores, grid))

    def probabilities(self, score: float) -> np.ndarray:
        """[p_good, p_anomaly] for an image score: 0.5 at the threshold."""
        p = float(self.calibration.probability(score))
        return np.array([1.0 - p, p], np.float32)

    def __call__(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """As a head: [N, 2] = [p_good, p_anomaly] for a batch of backbone outputs."""
        n = len(features[self.inputs[0]])
        return np.stack([self.probabilities(self.answer({k: v[i] for k, v in features.items()}).score) for i in range(n)]) if n else np.zeros((0, 2), np.float32)

    # -- files -------------------------------------------------------------
    def save(self, path: Path) -> None:
        c = self.calibration
        np.savez(
            path, inputs=np.array(self.inputs), scales=self.scales, pool=self.pool, bank=self.bank.astype(np.float16), radius=self.radius,
            threshold=c.threshold, false_alarm_rate=c.false_alarm_rate, log_mean=c.log_mean, log_std=c.log_std,
            n=c.n, exceeding=c.exceeding, guaranteed=c.guaranteed_false_alarm_rate, loo=self.loo if self.loo is not None else np.zeros(0),
            spread=self.spread if self.spread is not None else np.zeros(0), spread_power=self.spread_power,
        )

    @classmethod
    def load(cls, path: Path) -> AnomalyModel:
        with np.load(path) as z:
            calibration = Calibration(
                float(z["threshold"]), float(z["false_alarm_rate"]), float(z["log_mean"]), float(z["log_std"]), int(z["n"]), int(z["exceeding"]), float(z["guaranteed"])
            )
            bank = z["bank"].astype(np.float32)
            if bank.ndim != 2 or not len(bank) or not np.all(np.isfinite(bank)):
                raise ValueError(f"the bank holds {bank.shape} patches, or non-finite ones")
            loo = z["loo"] if "loo" in z.files and len(z["loo"]) else None
            pool = int(z["pool"]) if "pool" in z.files else LEGACY_POOL
            # Banks saved before the spread was recorded score plain distances, as they were calibrated.
            spread = z["spread"] if "spread" in z.files and len(z["spread"]) else None
            power = float(z["spread_power"]) if "spread_power" in z.files else 0.0
            return cls(tuple(str(n) for n in z["inputs"]), z["scales"], bank, float(z["radius"]), calibration, loo=loo, pool=pool, spread=spread, spread_power=power)


def bank_maps(export_manifest: Mapping) -> tuple[str, ...]:
    """The two feature maps a bank reads: the coarsest, by the export's recorded shapes, finer first (declared order breaks ties).

    Two scales tell a texture's own variation from a defect; the deeper maps
    do it far better than the fine ones PatchCore uses (module docstring of
    edgetl.anomaly.bank). Chosen by shape, so a plugin may list its maps in
    any order.
    """
    names = list(export_manifest["spec"]["feature_maps"])
    shapes = export_manifest.get("outputs", {})
    size = lambda name: shapes[name][-1] * shapes[name][-2] if len(shapes.get(name, ())) == 3 else 0  # noqa: E731
    coarsest = sorted(names, key=size)[:2]  # stable: declared order breaks ties
    return tuple(sorted(coarsest, key=lambda n: -size(n)))


def fit(
    images: Sequence[Sequence[Mapping[str, np.ndarray]]], inputs: tuple[str, ...], options: Mapping | None = None, calibrated: bool = True
) -> tuple[AnomalyModel, dict]:
    """A model from good images, each given as its views' maps ([C, h, w] per name; view 0 is the image as served).

    Returns the model and a summary: the patches before and after the
    coreset, the leave-one-out scores and the calibration. `calibrated=False`
    skips the threshold (for measuring AUROC from a single good image).
    """
    opts = {**DEFAULTS, **{k: v for k, v in (options or {}).items() if k in DEFAULTS and v is not None}}
    if calibrated and len(images) < MIN_GOOD:
        raise ValueError(f"an anomaly model needs at least {MIN_GOOD} good images, got {len(images)}")
    # Stored in float16 (half the memory); fitting sees the same rounding serving will.
    pool = int(opts["pool"])
    scales = map_scales([views[0] for views in images], inputs, pool)
    rows, origin = [], []
    for i, views in enumerate(images):
        for maps in views:
            patches, _ = patch_features(maps, inputs, scales, pool)
            rows.append(patches)
            origin.append(np.full(len(patches), i))
    patches, origin_all = np.concatenate(rows).astype(np.float16).astype(np.float32), np.concatenate(origin)
    chosen, radius = greedy_coreset(patches, int(opts["max_patches"]), int(opts["seed"]))
    bank, bank_origin = patches[chosen], origin_all[chosen]
    power = float(opts["spread_power"])
    spread = local_spread(bank, bank_origin, patches, origin_all, int(opts["spread_k"]), int(opts["seed"])) if power > 0 else None
    model = AnomalyModel(inputs, scales, bank, radius, calibrate(np.ones(2)), bank_origin, pool=pool, spread=spread, spread_power=power)
    loo = leave_one_out_scores(model, [views[0] for views in images]) if calibrated else np.array([])
    if calibrated:
        model.calibration = calibrate(loo, float(opts["false_alarm_rate"]))
        model.loo = loo
    summary = {
        "good_images": len(images), "views": len(images[0]), "patches": len(patches), "bank_patches": len(bank),
        "bank_bytes": int(bank.size * 2), "coreset_radius": radius, "leave_one_out_scores": [round(float(s), 4) for s in loo],
        "calibration": model.calibration.to_dict(), "options": opts,
    }
    return model, summary


def leave_one_out_scores(model: AnomalyModel, served_views: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    """Each enrolled image's score against the bank without its own patches (every view of it)."""
    scores = []
    for i, maps in enumerate(served_views):
        patches, _ = model.patches(maps)
        excluded = model.origin == i
        if excluded.all():
            raise ValueError("leave-one-out needs patches of at least two images in the bank")
        scores.append(image_score(model.scores_of(patches, excluded)))
    return np.array(scores)
