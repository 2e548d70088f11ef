"""Where "not like the good ones" begins, from good images alone.

Each good image is scored against a bank that holds every *other* good
image (leave one out), which is what a new good part on the line looks
like to the served bank. From these n scores:

- the **threshold** is the log-normal *prediction* bound for the target
  false-alarm rate (patch distances are positive and right-skewed; their logs
  are close to normal): mean + t(n-1) · std · sqrt(1 + 1/n) of the log scores,
  the exact bound for a new draw when the mean and spread are themselves
  estimated from n images. The plug-in quantile (mean + z · std) is not: with
  5 images it let 4.8 % of good parts through for a 1 % target in simulation
  (tests/anomaly). It is never below the largest leave-one-out score;
- the **guarantee** is distribution-free: if k of the n scores exceed the
  threshold, a new good part (exchangeable with the enrolled ones) exceeds
  it with probability at most (k + 1) / (n + 1), the conformal bound. With
  20 good images that is at most 1/21 = 4.8 %; a 1 % target below that rests
  on the log-normal fit, and the job's summary says so.

Defect images, when an operator has labelled some, give the AUROC and the
threshold for a target miss rate (`for_miss_rate`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

DEFAULT_FALSE_ALARM_RATE = 0.01
#: A floor on the spread of log scores, so two nearly equal scores do not make a razor-thin threshold.
MIN_LOG_STD = 0.05


@dataclass(frozen=True)
class Calibration:
    threshold: float
    false_alarm_rate: float  # the target
    log_mean: float
    log_std: float
    n: int  # good images behind it
    exceeding: int  # of them, how many scored above the threshold
    guaranteed_false_alarm_rate: float  # the conformal bound (k + 1) / (n + 1)

    def to_dict(self) -> dict:
        return asdict(self)

    def probability(self, score: np.ndarray | float) -> np.ndarray | float:
        """A score as the probability-like number the classify answer carries: 0.5 at the threshold."""
        z = (np.log(np.maximum(score, 1e-12)) - np.log(self.threshold)) / self.log_std
        return 1.0 / (1.0 + np.exp(-z))


def calibrate(good_scores: np.ndarray, false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE) -> Calibration:
    """The threshold for `false_alarm_rate` from leave-one-out scores of good images (at least 2)."""
    scores = np.asarray(good_scores, np.float64)
    if len(scores) < 2:
        raise ValueError("a threshold needs at least 2 good images (each is scored against the others)")
    if not 0.0 < false_alarm_rate < 0.5:
        raise ValueError(f"false_alarm_rate must be in (0, 0.5), got {false_alarm_rate}")
    logs = np.log(np.maximum(scores, 1e-12))
    n = len(scores)
    mean, std = float(logs.mean()), max(float(logs.std(ddof=1)), MIN_LOG_STD)
    bound = mean + student_t_quantile(1.0 - false_alarm_rate, n - 1) * std * np.sqrt(1.0 + 1.0 / n)
    threshold = max(float(np.exp(bound)), float(scores.max()))
    exceeding = int((scores > threshold).sum())
    return Calibration(threshold, false_alarm_rate, mean, std, len(scores), exceeding, (exceeding + 1) / (len(scores) + 1))


def student_t_cdf(x: float, dof: int) -> float:
    """P(T <= x) for Student's t with `dof` degrees of freedom (Simpson's rule; no scipy at run time)."""
    if dof > 200:
        return NormalDist().cdf(x)
    log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    # The density is smooth: 2,000 intervals on [0, |x|] are plenty.
    t = np.linspace(0.0, abs(x), 2001)
    f = np.exp(log_c - (dof + 1) / 2 * np.log1p(t * t / dof))
    half = (abs(x) / 6000.0) * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
    return 0.5 + half if x >= 0 else 0.5 - half


def student_t_quantile(p: float, dof: int) -> float:
    """The p-quantile (p >= 0.5) of Student's t with `dof` degrees of freedom (bisection on its CDF)."""
    if dof > 200:
        return NormalDist().inv_cdf(p)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, dof) < p:
        hi *= 2.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if student_t_cdf(mid, dof) < p else (lo, mid)
    return (lo + hi) / 2


def with_threshold(good_scores: np.ndarray, threshold: float) -> Calibration:
    """An operator's threshold (sensitivity) with what it means for good parts, from the same leave-one-out scores.

    `false_alarm_rate` is the share of good parts the log-normal prediction
    model expects above it (the inverse of `calibrate`); the guarantee is the
    conformal (k + 1) / (n + 1) for the k good images above it. Unlike
    `calibrate`, the threshold may sit below the largest good score: the
    operator asked for it, and the guarantee says what it costs.
    """
    scores = np.asarray(good_scores, np.float64)
    if len(scores) < 2:
        raise ValueError("a threshold needs at least 2 good images (each is scored against the others)")
    if not math.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"an anomaly threshold must be a positive number, got {threshold}")
    logs = np.log(np.maximum(scores, 1e-12))
    n = len(scores)
    mean, std = float(logs.mean()), max(float(logs.std(ddof=1)), MIN_LOG_STD)
    t = (math.log(threshold) - mean) / (std * math.sqrt(1.0 + 1.0 / n))
    expected = 1.0 - student_t_cdf(t, n - 1)
    exceeding = int((scores > threshold).sum())
    return Calibration(float(threshold), float(expected), mean, std, n, exceeding, (exceeding + 1) / (n + 1))




def auroc(good: np.ndarray, defect: np.ndarray) -> float:
    """Probability that a defect scores above a good image (ties count half): the Mann–Whitney AUROC."""
    good, defect = np.asarray(good, np.float64), np.asarray(defect, np.float64)
    if not len(good) or not len(defect):
        return float("nan")
    order = np.concatenate([good, defect])
    ranks = _ranks(order)
    return float((ranks[len(good) :].sum() - len(defect) * (len(defect) + 1) / 2) / (len(good) * len(defect)))


def for_miss_rate(defect_scores: np.ndarray, miss_rate: float) -> float:
    """The highest threshold that lets at most `miss_rate` of the labelled defects through."""
    scores = np.sort(np.asarray(defect_scores, np.float64))
    allowed = int(np.floor(miss_rate * len(scores)))
    return float(scores[allowed] * (1 - 1e-9)) if len(scores) else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)
    if len(values) < len(x):
        sums = np.bincount(inverse, weights=ranks)
        counts = np.bincount(inverse)
        ranks = (sums / counts)[inverse]
    return ranks
