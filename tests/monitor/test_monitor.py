"""Drift monitoring without a server: the reference, the window tests, the state machine, persistence.

Embeddings here are drawn from known distributions (six classes in 256
dimensions, as a head's standardised features are), so what a stable line
and a shifted one are is known exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgetl.audit import AuditLog, read
from edgetl.errors import ConfigError
from edgetl.monitor.monitor import DRIFTED, OK, WARNING, DriftMonitor, DriftSettings
from edgetl.monitor.reference import DriftReference, fit_reference
from edgetl.monitor.statistics import Moments, bonferroni_z, chi2_to_z, class_mix_z, features_z, mean_z
from edgetl.settings import Settings

K, D = 6, 256
LINE = [0.9] + [0.02] * 5  # a line's class mix: mostly good parts


class Line:
    """Six classes in D dimensions; `shift` moves every image, `scale` widens the spread."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.centres = rng.normal(0, 1, (K, D))
        self.directions = rng.normal(0, 1, (12, D))

    def draw(self, rng, n, mix=None, shift=0.0, scale=1.0):
        y = rng.choice(K, n, p=mix)
        latent = rng.normal(0, 1, (n, 12)) @ self.directions * 0.4 * scale
        return (self.centres[y] + latent + rng.normal(0, 0.6 * scale, (n, D)) + shift).astype(np.float32), y


def probs_for(y, rng):
    p = np.full((len(y), K), 0.02)
    p[np.arange(len(y)), y] = 0.9
    return p + rng.uniform(0, 0.01, p.shape)


@pytest.fixture
def line():
    return Line()


@pytest.fixture
def reference(line):
    z, y = line.draw(np.random.default_rng(1), 20 * K, mix=[1 / K] * K)
    return DriftReference.of(fit_reference(z, y, K))


def test_reference_scores_are_out_of_sample_and_new_material_scores_far_higher(line, tmp_path):
    rng = np.random.default_rng(1)
    z, y = line.draw(rng, 20 * K, mix=[1 / K] * K)
    arrays = fit_reference(z, y, K)
    reference = DriftReference.of(arrays)
    in_sample = np.array([reference.score(v) for v in z])
    # Scored by a fit that saw them, images look closer than new ones do: the reason for the cross-fit.
    assert reference.scores.mean() > in_sample.mean()
    new, _ = line.draw(rng, 200, mix=LINE)
    assert abs(np.mean([reference.score(v) for v in new]) - reference.scores.mean()) < 0.5
    other = Line(seed=9).draw(rng, 50)[0]  # another material
    far = np.array([reference.score(v) for v in other])
    assert far.mean() > reference.scores.mean() + reference.spread
    assert mean_z(far, reference.mean, reference.spread, len(reference.scores)) > 8
    # The file round-trips exactly.
    np.savez(tmp_path / "drift.npz", **arrays)
    loaded = DriftReference.load(tmp_path / "drift.npz")
    assert loaded.score(new[0]) == pytest.approx(reference.score(new[0]), rel=1e-6)
    assert loaded.observe(new[0]).shape == (arrays["basis"].shape[1] + 2,)


def test_a_tiny_label_set_still_gives_a_usable_reference(line):
    z, y = line.draw(np.random.default_rng(2), 8, mix=[1 / K] * K)
    reference = DriftReference.of(fit_reference(z, y, K))
    assert np.isfinite(reference.score(z[0]))
    with pytest.raises(ValueError, match="at least 4 images"):
        fit_reference(z[:3], y[:3], K)


def test_window_statistics():
    rng = np.random.default_rng(0)
    assert mean_z(np.full(100, 1.0), 0.0, 1.0, 100) == pytest.approx(1.0 / np.sqrt(0.02))
    assert bonferroni_z([3.0]) == pytest.approx(3.0, abs=1e-6)
    assert 2.0 < bonferroni_z([3.0, 0.1, -0.2]) < 3.0  # three chances to reach 3 are worth less than one
    assert bonferroni_z([-50.0, 1.0]) == -50.0
    # Wilson-Hilferty: the 99.9th percentile of chi-squared with 5 df (20.515) is z = 3.09.
    assert chi2_to_z(20.515, 5) == pytest.approx(3.09, abs=0.05)
    base = np.array([450, 10, 10, 10, 10, 10])
    same = [class_mix_z(base, rng.multinomial(100, base / base.sum())) for _ in range(200)]
    assert max(same) < 4.0
    assert class_mix_z(base, np.array([50, 10, 10, 10, 10, 10])) > 4.0
    m = Moments()
    values = rng.normal(3, 2, (500, 4))
    m.add_all(values[:120])
    m.add_all(values[120:])
    assert m.n == 500 and np.allclose(m.mean, values.mean(0)) and np.allclose(m.sd, values.std(0, ddof=1))
    assert Moments(*json.loads(json.dumps(m.as_list()))).sd == pytest.approx(m.sd)
    assert abs(features_z(values[:100], m)) < 4.0
    assert features_z(values[:100] + np.array([0, 0, 1.5, 0]), m) > 4.0


def feed(monitor, reference, line, rng, n, version="1", mix=LINE, shift=0.0):
    states = []
    for _ in range(0, n, 50):
        z, y = line.draw(rng, 50, mix=mix, shift=shift)
        for v, p in zip(z, probs_for(y, rng)):
            states.append(monitor.observe("t", version, reference, K, v, p / p.sum()))
    return states


def test_a_stable_line_stays_quiet_and_a_shifted_one_warns_then_drifts_then_clears(tmp_path, line, reference):
    audit = AuditLog(tmp_path / "audit.jsonl")
    monitor = DriftMonitor(tmp_path / "edgetl.db", DriftSettings(), audit)
    rng = np.random.default_rng(3)
    stable = feed(monitor, reference, line, rng, 5000)
    assert set(stable) == {OK}, "false alarm on a stable stream of 5,000 images"
    shifted = feed(monitor, reference, line, rng, 300, shift=0.8)
    # Within one window: warning; after three: drifted.
    assert shifted[99] == WARNING and shifted[299] == DRIFTED
    status = monitor.status("t", "1")
    assert status.state == DRIFTED and status.test in ("features", "reference") and status.statistic > 4
    back = feed(monitor, reference, line, rng, 300)
    assert back[-1] == OK
    assert monitor.flush()
    changes = [e for e in read(tmp_path / "audit.jsonl") if e["action"] == "DriftStateChanged"]
    assert [c["message"].split(":")[0].split(" after")[0] for c in changes] == ["drift ok -> warning", "drift warning -> drifted", "drift drifted -> ok"]
    assert all(c["task"] == "t" and c["version"] == "1" for c in changes)
    monitor.close()


def test_a_new_defect_rate_is_caught_by_the_class_mix_after_the_burn_in(tmp_path, line, reference):
    monitor = DriftMonitor(tmp_path / "edgetl.db", DriftSettings())
    rng = np.random.default_rng(4)
    feed(monitor, reference, line, rng, 500)  # the burn-in: the line's own class mix
    states = feed(monitor, reference, line, rng, 300, mix=[0.5] + [0.1] * 5)
    assert states[-1] == DRIFTED and monitor.status("t").test == "classes"
    monitor.close()


def test_state_survives_a_restart_and_a_new_adapter_starts_afresh(tmp_path, line, reference):
    monitor = DriftMonitor(tmp_path / "edgetl.db", DriftSettings())
    rng = np.random.default_rng(5)
    feed(monitor, reference, line, rng, 500)
    feed(monitor, reference, line, rng, 300, shift=0.8)
    before = monitor.status("t", "1")
    assert before.state == DRIFTED
    assert monitor.flush()
    monitor.close()

    again = DriftMonitor(tmp_path / "edgetl.db", DriftSettings())
    restored = again.status("t", "1")
    assert (restored.state, restored.since, restored.images, restored.burn_in_left) == (DRIFTED, before.since, before.images, 0)
    # The same adapter goes on with its baseline: a drifted line stays drifted.
    assert feed(again, reference, line, rng, 100, shift=0.8)[-1] == DRIFTED
    # A new adapter version: a fresh start (the operator retrained on the new line).
    assert again.observe("t", "2", reference, K, line.draw(rng, 1)[0][0], np.full(K, 1 / K)) == OK
    assert again.status("t", "2").images == 1 and again.status("t", "2").burn_in_left == 499
    again.close()


def test_without_a_reference_only_the_class_mix_and_confidence_are_watched(tmp_path, line):
    monitor = DriftMonitor(tmp_path / "edgetl.db", DriftSettings(burn_in=200))
    rng = np.random.default_rng(6)
    feed(monitor, None, line, rng, 400)
    assert set(monitor.status("t").last) == {"classes", "confidence"}
    monitor.close()


def test_bad_drift_settings_are_refused_with_the_values():
    with pytest.raises(ConfigError, match="window must be at least 10"):
        DriftSettings.of(Settings(drift_window=3))
    with pytest.raises(ConfigError, match="capture_rate must be between 0 and 1"):
        DriftSettings.of(Settings(drift_capture_rate=2.0))


def test_a_store_that_fails_never_stops_the_monitor(tmp_path, line, reference, caplog):
    """The writer's database goes away (a full disk, a bad sector): answers and states go on, the error is logged."""
    monitor = DriftMonitor(tmp_path / "edgetl.db", DriftSettings())
    rng = np.random.default_rng(7)
    feed(monitor, reference, line, rng, 500)
    assert monitor.flush()  # the writer is idle: closing under a running statement is not the fault tested
    monitor._db.close()
    states = feed(monitor, reference, line, rng, 300, shift=0.8)
    assert states[-1] == DRIFTED and monitor.flush()
    assert "drift state of task t not stored" in caplog.text
    monitor._writer.close()
