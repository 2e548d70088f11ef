"""Live accuracy: how often each adapter version is right on the line.

Only items the capture policy sampled *at random* count: they are an
unbiased sample of the traffic, so the share of them an operator accepted
estimates the adapter's accuracy on what the line really sends. (Uncertain
and flagged items are chosen because they are likely wrong; counting them
would make every adapter look worse than it is.) Items the operator
rejected (unusable images) or skipped are left out. The interval is
Wilson's score interval, which behaves at small n and at 0 % or 100 %,
where the normal approximation gives nonsense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95
Z95 = 1.959964  # the normal quantile for CONFIDENCE


@dataclass(frozen=True)
class VersionAccuracy:
    adapter_version: str
    reviewed: int
    correct: int
    accuracy: float
    low: float
    high: float
    first_at: float
    last_at: float


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for `correct` successes in `n` trials ((0, 1) when n = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def live_accuracy(verdicts: list[tuple[str, bool, float]]) -> list[VersionAccuracy]:
    """Per adapter version, from (version, prediction was right, captured_at) verdicts; newest version first."""
    by_version: dict[str, list[tuple[bool, float]]] = {}
    for version, right, at in verdicts:
        by_version.setdefault(version, []).append((right, at))
    out = []
    for version, rows in by_version.items():
        n, k = len(rows), sum(right for right, _ in rows)
        low, high = wilson(k, n)
        out.append(VersionAccuracy(version, n, k, k / n, low, high, min(at for _, at in rows), max(at for _, at in rows)))
    return sorted(out, key=lambda v: (not v.adapter_version.isdigit(), -int(v.adapter_version) if v.adapter_version.isdigit() else 0, v.adapter_version))
