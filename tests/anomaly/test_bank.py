"""The anomaly bank's numpy parts against brute force, and the threshold's promises in simulation."""

from __future__ import annotations

import numpy as np
import pytest

from edgetl.anomaly.bank import (
    BankSearch,
    greedy_coreset,
    image_score,
    local_mean,
    local_spread,
    nearest_distances,
    nearest_rows,
    patch_features,
    random_projection,
)
from edgetl.anomaly.model import AnomalyModel, fit, leave_one_out_scores
from edgetl.anomaly.threshold import auroc, calibrate, for_miss_rate


def test_local_mean_averages_only_the_neighbours_that_exist():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    pooled = local_mean(x)
    assert pooled[0, 0, 0] == pytest.approx(np.mean([0, 1, 4, 5]))  # a corner: 4 neighbours, no zeros
    assert pooled[0, 0, 1] == pytest.approx(np.mean([0, 1, 2, 4, 5, 6]))  # an edge: 6
    assert pooled[0, 1, 1] == pytest.approx(x[0, :3, :3].mean())  # inside: 9
    flat = local_mean(np.ones((2, 5, 7), np.float32))
    assert np.allclose(flat, 1.0)  # zero padding would darken the border


def test_patch_features_put_both_scales_on_the_finest_grid():
    rng = np.random.default_rng(0)
    maps = {"fine": rng.random((3, 8, 8), np.float32), "coarse": rng.random((5, 4, 4), np.float32)}
    patches, grid = patch_features(maps, ("fine", "coarse"), np.array([1.0, 2.0], np.float32), pool=3)
    assert grid == (8, 8) and patches.shape == (64, 8)
    assert np.allclose(patches[:, :3], local_mean(maps["fine"]).reshape(3, -1).T, atol=1e-6)
    # the coarse map is divided by its scale
    unscaled, _ = patch_features(maps, ("fine", "coarse"), pool=3)
    assert np.allclose(patches[:, 3:] * 2.0, unscaled[:, 3:], atol=1e-6)
    # without pooling (the default) a patch is the map's own position
    plain, _ = patch_features(maps, ("fine", "coarse"))
    assert np.allclose(plain[:, :3], maps["fine"].reshape(3, -1).T)
    assert not np.allclose(plain[:, :3], patches[:, :3])


def test_maps_with_many_channels_are_resized_too():
    """OpenCV resizes a limited number of channels at once; a plugin's 320-channel map must still work."""
    rng = np.random.default_rng(7)
    maps = {"fine": rng.random((8, 8, 8), np.float32), "deep": rng.random((320, 2, 2), np.float32)}
    patches, grid = patch_features(maps, ("fine", "deep"))
    assert grid == (8, 8) and patches.shape == (64, 328)
    assert np.allclose(patches[:, 8:].mean(0), maps["deep"].reshape(320, -1).mean(1), atol=0.05)


def test_nearest_distances_match_brute_force_and_skip_excluded_rows():
    rng = np.random.default_rng(1)
    q, b = rng.standard_normal((30, 6)).astype(np.float32), rng.standard_normal((50, 6)).astype(np.float32)
    brute = np.sqrt(((q[:, None, :] - b[None]) ** 2).sum(-1))
    assert np.allclose(nearest_distances(q, b), brute.min(1), atol=1e-4)
    excluded = np.zeros(50, bool)
    excluded[brute.argmin(1)] = True
    assert np.allclose(nearest_distances(q, b, excluded=excluded), np.where(excluded[None], np.inf, brute).min(1), atol=1e-4)


def test_image_score_is_the_mean_of_the_worst_one_percent():
    scores = np.zeros(1000)
    scores[:10] = 5.0
    assert image_score(scores) == pytest.approx(5.0)
    scores[:5] = 0.0
    assert image_score(scores) == pytest.approx(2.5)
    assert image_score(np.array([1.0, 3.0])) == pytest.approx(3.0)  # at least one patch


def test_the_coreset_covers_the_patches_it_drops():
    rng = np.random.default_rng(2)
    patches = np.concatenate([rng.standard_normal((500, 8)), rng.standard_normal((5, 8)) + 20]).astype(np.float32)  # a rare cluster
    chosen, radius = greedy_coreset(patches, 40)
    assert len(set(chosen.tolist())) == 40
    assert (chosen >= 500).any()  # k-centre keeps the rare patches a random sample would likely miss
    distances = nearest_distances(patches, patches[chosen])
    assert np.percentile(distances, 99) <= radius * 1.25  # the radius (measured on a sample) describes the rest
    assert greedy_coreset(patches, 1000)[0].tolist() == list(range(len(patches)))  # small enough: all kept


def test_the_coreset_projects_in_float32_and_keeps_distances():
    # NumPy 2 turns float32 / (a float64 scalar) into float64; the coreset's loop then read twice
    # the bytes per pick and ran five times slower on a guided head's bank. Pinned here.
    rng = np.random.default_rng(3)
    patches = rng.standard_normal((300, 432)).astype(np.float32)
    z = random_projection(patches, 64, np.random.default_rng(0))
    assert z.dtype == np.float32 and z.shape == (300, 64)
    full = np.linalg.norm(patches[:150] - patches[150:], axis=1)
    projected = np.linalg.norm(z[:150] - z[150:], axis=1)
    assert np.median(np.abs(projected / full - 1)) < 0.1  # Johnson-Lindenstrauss: distances kept to a few per cent
    assert np.array_equal(random_projection(patches[:, :32], 64, np.random.default_rng(0)), patches[:, :32])  # nothing to gain: as given


def _maps(rng, n, bump=0.0):
    """n images of two feature maps; `bump` raises one patch of the fine map (a local defect)."""
    out = []
    for _ in range(n):
        fine, coarse = rng.normal(0, 1, (4, 8, 8)).astype(np.float32), rng.normal(0, 1, (6, 4, 4)).astype(np.float32)
        fine[:, 3, 3] += bump
        out.append({"fine": fine, "coarse": coarse})
    return out


def test_a_fitted_bank_scores_a_local_defect_above_good_parts_and_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(3)
    model, summary = fit([[m] for m in _maps(rng, 20)], ("fine", "coarse"), {"max_patches": 1024})
    assert summary["bank_patches"] == 1024 and summary["patches"] == 20 * 64
    good = [model.answer(m).score for m in _maps(rng, 30)]
    bad = [model.answer(m).score for m in _maps(rng, 30, bump=12.0)]
    assert auroc(np.array(good), np.array(bad)) > 0.95
    answer = model.answer(_maps(rng, 1, bump=12.0)[0])
    assert answer.map.shape == (8, 8) and np.unravel_index(answer.map.argmax(), (8, 8)) == (3, 3)
    assert answer.anomalous == (answer.score > answer.threshold)

    model.save(tmp_path / "bank.npz")
    loaded = AnomalyModel.load(tmp_path / "bank.npz")
    probe = _maps(rng, 1, bump=3.0)[0]
    assert loaded.answer(probe).score == pytest.approx(model.answer(probe).score, rel=1e-5)  # stored in float16, fitted on float16 too
    assert loaded.calibration == model.calibration
    probs = loaded({k: v[None] for k, v in probe.items()})
    assert probs.shape == (1, 2) and probs.sum() == pytest.approx(1.0)


def test_leave_one_out_ignores_every_view_of_the_image_it_scores():
    rng = np.random.default_rng(4)
    images = _maps(rng, 6)
    model, _ = fit([[m, m] for m in images], ("fine", "coarse"), {"max_patches": 100000})
    loo = leave_one_out_scores(model, images)
    # Scored against itself an image would score ~0; left out, like a new part.
    assert np.all(loo > 1.0)
    assert all(model.answer(m).score < 1e-2 for m in images)


def test_the_threshold_keeps_its_distribution_free_promise():
    """Over many draws of n good scores, a new good part exceeds the threshold at most (k+1)/(n+1) of the time."""
    rng = np.random.default_rng(5)
    for n in (5, 20):
        exceed, bound = [], []
        for _ in range(2000):
            scores = rng.lognormal(0.0, 0.3, n + 1)
            c = calibrate(scores[:n], 0.01)
            exceed.append(scores[n] > c.threshold)
            bound.append(c.guaranteed_false_alarm_rate)
        assert np.mean(exceed) <= np.mean(bound) + 0.01
        assert np.mean(bound) == pytest.approx(1 / (n + 1), abs=0.01)  # the threshold is never below the largest score
        assert np.mean(exceed) <= 0.02  # and the log-normal prediction bound, its model true here, holds it near the 1 % asked


def test_calibration_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="at least 2"):
        calibrate(np.array([1.0]))
    with pytest.raises(ValueError, match="false_alarm_rate"):
        calibrate(np.array([1.0, 2.0]), 0.7)


def test_auroc_and_the_threshold_for_a_miss_rate_against_brute_force():
    rng = np.random.default_rng(6)
    good, bad = rng.integers(0, 10, 40).astype(float), rng.integers(3, 13, 30).astype(float)  # ties on purpose
    pairs = np.mean([(b > g) + 0.5 * (b == g) for g in good for b in bad])
    assert auroc(good, bad) == pytest.approx(pairs)
    assert np.isnan(auroc(good, np.array([])))
    scores = np.arange(1.0, 11.0)
    t = for_miss_rate(scores, 0.2)
    assert (scores <= t).mean() <= 0.2 and (scores <= t).sum() == 2


def test_student_t_quantiles_match_the_tables():
    from edgetl.anomaly.threshold import student_t_quantile

    for p, dof, table in ((0.99, 4, 3.747), (0.99, 19, 2.539), (0.975, 1, 12.706), (0.95, 10, 1.812)):
        assert student_t_quantile(p, dof) == pytest.approx(table, abs=2e-3)


def test_the_bank_reads_the_two_coarsest_maps_finer_first_whatever_order_a_plugin_lists_them_in():
    from edgetl.anomaly.model import bank_maps

    manifest = {"spec": {"feature_maps": ["s32", "s8", "s16"]}, "outputs": {"pooled": [64], "s32": [320, 7, 7], "s8": [40, 28, 28], "s16": [112, 14, 14]}}
    assert bank_maps(manifest) == ("s16", "s32")  # the finer one first: it sets the grid
    two = {"spec": {"feature_maps": ["a", "b"]}, "outputs": {"a": [8, 7, 7], "b": [8, 7, 7]}}
    assert bank_maps(two) == ("a", "b")  # a tie keeps the declared order


def test_a_bank_is_scored_with_the_pooling_it_was_fitted_with_and_older_banks_with_3x3(tmp_path):
    rng = np.random.default_rng(5)
    images = [[m] for m in _maps(rng, 8)]
    plain, _ = fit(images, ("fine", "coarse"), {"max_patches": 256})
    pooled, _ = fit(images, ("fine", "coarse"), {"max_patches": 256, "pool": 3})
    assert plain.pool == 1 and pooled.pool == 3
    probe = _maps(rng, 1, bump=6.0)[0]
    for model in (plain, pooled):
        model.save(tmp_path / "bank.npz")
        loaded = AnomalyModel.load(tmp_path / "bank.npz")
        assert loaded.pool == model.pool
        assert loaded.answer(probe).score == pytest.approx(model.answer(probe).score, rel=1e-5)
    # A bank written before `pool` was recorded (edgetl <= stop 18) was fitted with a 3×3 mean.
    with np.load(tmp_path / "bank.npz") as z:
        legacy = {k: z[k] for k in z.files if k != "pool"}
    np.savez(tmp_path / "legacy.npz", **legacy)
    old = AnomalyModel.load(tmp_path / "legacy.npz")
    assert old.pool == 3 and old.answer(probe).score == pytest.approx(pooled.answer(probe).score, rel=1e-5)


def test_an_operators_threshold_says_what_it_means_for_good_parts_and_inverts_calibration():
    from edgetl.anomaly.threshold import student_t_cdf, with_threshold

    assert student_t_cdf(0.0, 5) == pytest.approx(0.5)
    assert student_t_cdf(2.015, 5) == pytest.approx(0.95, abs=1e-3) and student_t_cdf(-2.015, 5) == pytest.approx(0.05, abs=1e-3)
    scores = np.exp(np.random.default_rng(6).normal(0.0, 0.2, 30))
    for rate in (0.001, 0.005):
        c = calibrate(scores, rate)
        assert c.threshold > scores.max()  # not held up by the largest good score, so the model's rate comes back:
        assert with_threshold(scores, c.threshold).false_alarm_rate == pytest.approx(rate, rel=1e-3)
    low = with_threshold(scores, float(np.median(scores)))
    assert low.false_alarm_rate == pytest.approx(0.5, abs=0.1)
    assert low.exceeding == int((scores > np.median(scores)).sum()) and low.guaranteed_false_alarm_rate == pytest.approx((low.exceeding + 1) / 31)
    high = with_threshold(scores, float(scores.max() * 2))
    assert high.exceeding == 0 and high.false_alarm_rate < 0.001 and high.guaranteed_false_alarm_rate == pytest.approx(1 / 31)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number"):
            with_threshold(scores, bad)


def test_weighted_distances_are_the_minimum_of_each_rows_distance_in_its_own_unit():
    rng = np.random.default_rng(7)
    q, b = rng.standard_normal((30, 6)).astype(np.float32), rng.standard_normal((50, 6)).astype(np.float32)
    spread = rng.uniform(0.2, 3.0, 50).astype(np.float32)
    brute = np.sqrt(((q[:, None, :] - b[None]) ** 2).sum(-1)) / spread[None]
    assert np.allclose(nearest_distances(q, b, row_weights=spread**-2.0), brute.min(1), atol=1e-4)
    excluded = np.zeros(50, bool)
    excluded[brute.argmin(1)] = True
    assert np.allclose(nearest_distances(q, b, excluded=excluded, row_weights=spread**-2.0), np.where(excluded[None], np.inf, brute).min(1), atol=1e-4)
    plain = np.sqrt(((q[:, None, :] - b[None]) ** 2).sum(-1))
    distance, index, scores = nearest_rows(q, b, row_weights=spread**-2.0)
    assert np.allclose(distance, plain.min(1), atol=1e-4) and np.array_equal(index, plain.argmin(1))
    assert np.allclose(scores, brute.min(1), atol=1e-4)  # one product serves both: enrolment's coverage and its score


def test_a_bank_search_gives_the_distances_nearest_distances_gives_weighted_or_not_with_rows_excluded():
    rng = np.random.default_rng(11)
    # Far from the origin, as feature patches are: the norms folded into the product must not cost precision.
    q, b = (5 + rng.standard_normal((40, 12))).astype(np.float32), (5 + rng.standard_normal((64, 12))).astype(np.float32)
    spread = rng.uniform(0.2, 3.0, 64).astype(np.float32)
    plain = np.sqrt(((q[:, None, :] - b[None]) ** 2).sum(-1))
    excluded = np.zeros(64, bool)
    excluded[plain.argmin(1)] = True
    for weights, brute in ((None, plain), (spread**-1.5, plain / spread[None] ** 0.75)):
        search = BankSearch(b, weights)
        assert np.allclose(search(q), brute.min(1), rtol=1e-4, atol=1e-3)
        assert np.allclose(search(q), nearest_distances(q, b, row_weights=weights), rtol=1e-4, atol=1e-3)
        assert np.allclose(search(q, excluded), np.where(excluded[None], np.inf, brute).min(1), rtol=1e-4, atol=1e-3)
    assert np.all(BankSearch(b)(b) < 1e-2)  # a row is at distance 0 from itself, not at a small negative clamped to NaN
    assert np.isinf(BankSearch(b)(q[:1], np.ones(64, bool))).all()  # every row excluded: nothing near


def test_a_patch_next_to_its_bank_row_gets_its_true_distance_alone_or_in_a_batch():
    # A labelled good image's patches lie next to their own rows of the bank (rounded to float16 there).
    # Through the product alone their distance was float32 rounding of |q|^2 - 2 q.b + |b|^2, tens of
    # percent off and different with every batch size; a guided head's descriptor, and the drift
    # reference fitted from it in batches, followed (tests/server/test_adaptation.py).
    rng = np.random.default_rng(12)
    bank = (5 + rng.standard_normal((300, 80))).astype(np.float16).astype(np.float32)
    queries = (bank[:64] + 1e-3 * rng.standard_normal((64, 80))).astype(np.float32)
    spread = rng.uniform(0.2, 3.0, 300).astype(np.float32)
    for weights in (None, spread**-1.5):
        w = np.ones(300) if weights is None else weights.astype(np.float64)
        truth = np.sqrt((w[None] * ((queries[:, None, :].astype(np.float64) - bank[None]) ** 2).sum(-1)).min(1))
        search = BankSearch(bank, weights)
        together = search(queries)
        alone = np.concatenate([search(queries[i : i + 1]) for i in range(64)])
        assert np.allclose(together, truth, rtol=1e-3)
        assert np.allclose(alone, together, rtol=1e-5)


def test_a_rows_spread_is_its_kth_nearest_patch_of_another_image():
    rng = np.random.default_rng(8)
    patches = rng.standard_normal((120, 5)).astype(np.float32)
    origin = np.repeat(np.arange(6), 20)
    rows = np.array([0, 25, 119])
    spread = local_spread(patches[rows], origin[rows], patches, origin, k=3)
    for row, value in zip(rows, spread):
        others = np.sqrt(((patches[origin != origin[row]] - patches[row]) ** 2).sum(-1))
        assert value == pytest.approx(np.sort(others)[2], rel=1e-4)
    assert local_spread(patches[:3], origin[:3], patches[:20], origin[:20], k=3) is None  # one image: nothing to measure against


def test_a_patch_as_far_from_a_tight_cluster_of_good_patches_scores_higher_than_from_a_loose_one():
    # Good parts vary little in one region of feature space (say, plain soil) and a lot in
    # another (grass blades). A plain distance calls both queries equally anomalous; in units
    # of the local spread, the one off the tight region is the defect.
    rng = np.random.default_rng(9)
    tight, loose = np.zeros(8, np.float32), np.full(8, 10.0, np.float32)
    patches = np.concatenate([tight + 0.05 * rng.standard_normal((200, 8)), loose + 1.0 * rng.standard_normal((200, 8))]).astype(np.float32)
    origin = np.tile(np.arange(20), 20)
    spread = local_spread(patches, origin, patches, origin, k=5)
    weights = spread**-1.5  # spread_power 0.75
    step = np.zeros(8, np.float32)
    step[0] = 3.0
    queries = np.stack([tight + step, loose + step])
    plain = nearest_distances(queries, patches)
    scaled = nearest_distances(queries, patches, row_weights=weights)
    assert abs(plain[0] - plain[1]) < 0.5 * plain.max() and scaled[0] > 5 * scaled[1]


def test_a_bank_keeps_its_spread_through_save_and_load_and_older_banks_score_plain_distances(tmp_path):
    rng = np.random.default_rng(10)
    images = [[m] for m in _maps(rng, 8)]
    model, _ = fit(images, ("fine", "coarse"), {"max_patches": 256})
    plain, _ = fit(images, ("fine", "coarse"), {"max_patches": 256, "spread_power": 0})
    assert model.spread is not None and model.spread.shape == (len(model.bank),) and plain.spread is None
    probe = _maps(rng, 1, bump=6.0)[0]
    model.save(tmp_path / "bank.npz")
    loaded = AnomalyModel.load(tmp_path / "bank.npz")
    assert loaded.spread_power == model.spread_power and loaded.answer(probe).score == pytest.approx(model.answer(probe).score, rel=1e-5)
    # A bank written before the spread was recorded (edgetl <= stop 23) was calibrated on plain distances.
    plain.save(tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz") as z:
        legacy = {k: z[k] for k in z.files if k not in ("spread", "spread_power")}
    np.savez(tmp_path / "legacy.npz", **legacy)
    old = AnomalyModel.load(tmp_path / "legacy.npz")
    assert old.spread is None and old.answer(probe).score == pytest.approx(plain.answer(probe).score, rel=1e-5)
    # A spread that does not match the bank is a damaged file, not a bank that scores something else.
    with np.load(tmp_path / "bank.npz") as z:
        damaged = {k: z[k] for k in z.files}
    damaged["spread"] = damaged["spread"][:-1]
    np.savez(tmp_path / "damaged.npz", **damaged)
    with pytest.raises(ValueError, match="spread"):
        AnomalyModel.load(tmp_path / "damaged.npz")


def test_growing_a_bank_online_never_raises_a_score_and_gives_new_rows_a_spread():
    from edgetl.anomaly.enrol import grow

    rng = np.random.default_rng(11)
    model, _ = fit([[m] for m in _maps(rng, 10)], ("fine", "coarse"), {"max_patches": 128})
    newcomer = _maps(rng, 1, bump=4.0)[0]
    grown, score, added = grow(model, [newcomer], max_bank=1000)
    assert added > 0 and len(grown.bank) == len(model.bank) + added and grown.spread.shape == (len(grown.bank),)
    assert np.array_equal(grown.spread[: len(model.bank)], model.spread) and np.all(grown.spread > 0)
    assert score == pytest.approx(model.answer(newcomer).score, rel=1e-3)  # grow rounds the part to float16, as stored
    for probe in _maps(rng, 10, bump=3.0):
        assert grown.answer(probe).score <= model.answer(probe).score + 1e-6
    assert grown.answer(newcomer).score < score
