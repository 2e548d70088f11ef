"""Capture policies: which answers are kept, rate caps, per-task overrides in SQLite."""

from __future__ import annotations

import numpy as np
import pytest

from edgetl.errors import InvalidInput
from edgetl.review.capture import RateWindow
from edgetl.review.policy import CapturePolicies, CapturePolicy, margin_of


def test_reasons_are_decided_independently():
    policy = CapturePolicy(uncertain_score=0.6, uncertain_margin=0.15, random_rate=0.01)
    assert policy.reasons(0.95, 0.9, flagged=False, draw=0.5) == []
    assert policy.reasons(0.55, 0.4, flagged=False, draw=0.5) == ["uncertain"]      # low score
    assert policy.reasons(0.62, 0.10, flagged=False, draw=0.5) == ["uncertain"]     # close second
    assert policy.reasons(0.95, 0.9, flagged=True, draw=0.5) == ["flagged"]
    # The random sample does not look at the answer: a sure answer is sampled too,
    # and an uncertain one sampled at random carries both reasons.
    assert policy.reasons(0.99, 0.98, flagged=False, draw=0.001) == ["random"]
    assert policy.reasons(0.40, 0.05, flagged=True, draw=0.001) == ["flagged", "uncertain", "random"]
    assert CapturePolicy(enabled=False).reasons(0.1, 0.0, flagged=True, draw=0.0) == []


def test_random_share_matches_the_rate():
    policy = CapturePolicy(uncertain_score=0.0, uncertain_margin=0.0, random_rate=0.005)
    draws = np.random.default_rng(0).random(200_000)
    sampled = sum(bool(policy.reasons(0.99, 0.99, False, d)) for d in draws)
    assert 0.0045 < sampled / len(draws) < 0.0055


def test_margin():
    assert margin_of(np.array([0.1, 0.7, 0.2], np.float32)) == pytest.approx(0.5)
    assert margin_of(np.array([1.0], np.float32)) == 1.0


@pytest.mark.parametrize("field,value", [("random_rate", 1.5), ("uncertain_score", -0.1), ("per_minute", -1), ("uncertain_margin", float("nan"))])
def test_out_of_range_values_are_refused(field, value):
    with pytest.raises(InvalidInput, match=field):
        CapturePolicy().with_changes({field: value})


def test_rate_window_caps_minute_hour_and_day():
    policy = CapturePolicy(per_minute=2, per_hour=3, per_day=4)
    window = RateWindow()
    t = 1_000_000.0
    assert window.allows(policy, t)
    window.add(t)
    window.add(t + 1)
    assert not window.allows(policy, t + 2)          # 2 in the last minute
    assert window.allows(policy, t + 61)             # a minute later: room again
    window.add(t + 61)
    assert not window.allows(policy, t + 200)        # 3 in the last hour
    window.add(t + 3700)
    assert not window.allows(policy, t + 3800)       # 4 in the last day
    assert window.allows(policy, t + 86_500)         # the day has moved on
    assert not RateWindow().allows(CapturePolicy(per_minute=0), t)  # 0 means none


def test_overrides_persist_keep_only_changes_and_reset(tmp_path):
    db = tmp_path / "edgetl.db"
    defaults = CapturePolicy()
    policies = CapturePolicies(db, defaults)
    stored = policies.update("weld", {"random_rate": 0.05, "per_minute": 10}, who="anna")
    assert stored.customized and stored.updated_by == "anna" and stored.policy.random_rate == 0.05
    assert policies.get("other") == defaults
    with pytest.raises(InvalidInput):
        policies.update("weld", {"random_rate": 2.0}, who="anna")
    assert policies.get("weld").random_rate == 0.05  # a refused change leaves the policy as it was
    policies.close()

    # A restart reads the overrides back; a changed default reaches the fields the task never set.
    reopened = CapturePolicies(db, CapturePolicy(per_hour=99))
    assert reopened.get("weld").random_rate == 0.05 and reopened.get("weld").per_minute == 10 and reopened.get("weld").per_hour == 99
    back = reopened.update("weld", {}, who="ben", reset=True)
    assert not back.customized and reopened.get("weld") == reopened.defaults
    with pytest.raises(InvalidInput, match="unknown capture policy fields"):
        reopened.update("weld", {"bogus": 1}, who="ben")
    reopened.close()
