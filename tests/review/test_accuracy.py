"""Live accuracy: the Wilson interval and the per-version grouping."""

from __future__ import annotations

import numpy as np
import pytest

from edgetl.review.accuracy import live_accuracy, wilson


def test_wilson_matches_published_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553 to 0.3662.
    low, high = wilson(81, 263)
    assert low == pytest.approx(0.2553, abs=1e-4) and high == pytest.approx(0.3662, abs=1e-4)
    # All right in 10: the interval does not collapse onto 1 as the normal approximation's does.
    low, high = wilson(10, 10)
    assert high == pytest.approx(1.0) and low == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    p, n, trials = 0.93, 60, 4000
    hits = 0
    for k in rng.binomial(n, p, trials):
        low, high = wilson(int(k), n)
        hits += low <= p <= high
    assert 0.93 < hits / trials < 0.975


def test_grouped_by_version_newest_first():
    verdicts = [("1", True, 10.0), ("1", False, 11.0), ("2", True, 12.0), ("2", True, 13.0), ("2", True, 14.0), ("builtin", True, 1.0)]
    rows = live_accuracy(verdicts)
    assert [r.adapter_version for r in rows] == ["2", "1", "builtin"]
    assert (rows[0].reviewed, rows[0].correct, rows[0].accuracy) == (3, 3, 1.0)
    assert rows[1].accuracy == 0.5 and rows[1].first_at == 10.0 and rows[1].last_at == 11.0
