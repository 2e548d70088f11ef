"""Window tests: is this window of images like its yardstick? Each answers a z value.

Four tests (edgetl.monitor.monitor runs them), each cheap enough for every window in
the serving process:

- ``reference``: the window's mean drift score against the labelled images'
  out-of-sample scores (two-sided, `mean_z`). Means of a hundred scores are
  close to normal whatever the scores' own shape, so a z value is honest; its
  spread counts the window's and the reference's sampling error.
- ``features``: the window's means of the score and of each standardised
  coordinate against the adapter's first images on the line, combined by
  Bonferroni (`features_z`).
- ``classes``: the predicted-class counts of the window against those of the
  adapter's first images on the line (a 2 x K chi-squared test, `class_mix_z`).
  Not against the labels: labelled sets are balanced on purpose, a line is not.
  Classes expected fewer than 5 times are pooled so the chi-squared
  approximation holds on a line with rare defects.
- ``confidence``: the window's mean top score against the first images'
  (one-sided: only a falling confidence is news).

All report z, so one threshold reads them all (4 by default: a two-sided p of
6e-5 per test and window).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def mean_z(window: np.ndarray, reference_mean: float, reference_spread: float, reference_n: int) -> float:
    """z of a window mean against a reference mean (positive: the window is higher)."""
    n = len(window)
    if n == 0 or reference_n == 0:
        return 0.0
    se = reference_spread * math.sqrt(1.0 / n + 1.0 / reference_n)
    return float((float(np.mean(window)) - reference_mean) / se)


def bonferroni_z(zs: list[float]) -> float:
    """The largest |z| of several two-sided tests, as one z with the family's error rate (Bonferroni), sign kept."""
    if not zs:
        return 0.0
    largest = max(zs, key=abs)
    p = min(1.0, len(zs) * math.erfc(abs(largest) / math.sqrt(2.0)))
    if p < 1e-12:  # far past any threshold; inv_cdf would lose it
        return largest
    return math.copysign(max(0.0, NormalDist().inv_cdf(1.0 - p / 2.0)), largest)


def features_z(window: np.ndarray, baseline: Moments) -> float:
    """The features test: window means of the drift score and of each standardised coordinate
    (`window` [n, m], rows from DriftReference.observe) against the line's first images
    (`baseline`), combined (Bonferroni). The score catches images moving away in any
    direction; a coordinate, a move along one (light, contrast) that the score, averaging
    over all of them, would dilute. Both sides come from the line, so its class mix is
    the same on both, and the baseline's hundreds of images make its own error small."""
    if len(window) == 0 or baseline.n < 2:
        return 0.0
    sd = np.maximum(baseline.sd, 1e-6)
    se = sd * math.sqrt(1.0 / len(window) + 1.0 / baseline.n)
    return bonferroni_z(((window.mean(axis=0) - baseline.mean) / se).tolist())


def chi2_to_z(statistic: float, df: int) -> float:
    """A chi-squared value as a standard normal z (Wilson-Hilferty), so all tests share one threshold."""
    if df <= 0:
        return 0.0
    h = 2.0 / (9.0 * df)
    return float(((statistic / df) ** (1.0 / 3.0) - (1.0 - h)) / math.sqrt(h))


def class_mix_z(baseline: np.ndarray, window: np.ndarray, min_expected: float = 5.0) -> float:
    """z of a 2 x K chi-squared test between two count vectors (0 when there is nothing to compare)."""
    baseline = np.asarray(baseline, np.float64)
    window = np.asarray(window, np.float64)
    total_b, total_w = baseline.sum(), window.sum()
    if total_b == 0 or total_w == 0:
        return 0.0
    columns = baseline + window
    expected_w = columns * total_w / (total_b + total_w)
    expected_b = columns - expected_w
    # Pool the rare classes into one column, so no expected count is tiny.
    rare = (np.minimum(expected_w, expected_b) < min_expected) & (columns > 0)
    keep = (columns > 0) & ~rare
    b, w = baseline[keep], window[keep]
    if rare.any():
        b, w = np.append(b, baseline[rare].sum()), np.append(w, window[rare].sum())
    if len(b) < 2:
        return 0.0
    cols = b + w
    eb = cols * total_b / (total_b + total_w)
    ew = cols * total_w / (total_b + total_w)
    statistic = float((((b - eb) ** 2) / np.maximum(eb, 1e-12)).sum() + (((w - ew) ** 2) / np.maximum(ew, 1e-12)).sum())
    return chi2_to_z(statistic, len(b) - 1)


class Moments:
    """Count, mean and spread of a stream of numbers or of vectors (merged batch by batch, Chan et al.),
    small enough to store in a JSON row."""

    def __init__(self, n: float = 0.0, mean=0.0, m2=0.0):
        self.n, self.mean, self.m2 = float(n), np.asarray(mean, np.float64), np.asarray(m2, np.float64)

    def add_all(self, values: np.ndarray) -> None:
        """Add a batch: [n] numbers, or [n, m] vectors."""
        values = np.asarray(values, np.float64)
        if len(values) == 0:
            return
        n, mean = len(values), values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.n * n / total
        self.n = total

    @property
    def sd(self):
        return np.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else np.zeros_like(self.m2)

    def as_list(self) -> list:
        return [self.n, self.mean.tolist(), self.m2.tolist()]
