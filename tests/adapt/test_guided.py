"""Guided heads (edgetl.runtime.guided, edgetl.adapt.trainer_guided) on feature maps made here.

The maps are synthetic on purpose: "good" images are noise around one
texture; a "defect" image has a few positions pushed far off it. A plain
head's mean pooling dilutes two positions among 196; the guided head pools
at them. The real backbone and server are exercised in tests/server.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgetl.adapt.trainer_guided import fit_guided, good_class
from edgetl.errors import InvalidInput
from edgetl.runtime.guided import GoodBank, GuidedHead, guided_features, head_from_arrays, load_head
from edgetl.runtime.heads import LinearHead, probabilities_and_embedding

NAMES = ("fine", "coarse")


def _maps(rng, defect: int = 0, spots: int = 2) -> dict[str, np.ndarray]:
    fine = rng.normal(0, 1, (8, 14, 14)).astype(np.float32)
    coarse = rng.normal(0, 1, (16, 7, 7)).astype(np.float32)
    for _ in range(spots if defect else 0):
        y, x = rng.integers(0, 14, 2)
        fine[:, y, x] += 6.0 * (1 if defect == 1 else -1)  # two kinds of defect: pushed up or down
    return {"fine": fine, "coarse": coarse}


def _set(rng, per_class: int, views: int = 2):
    y = np.repeat(np.arange(3), per_class)
    return [[_maps(rng, c) for c in y] for _ in range(views)], y


def test_descriptor_pools_where_the_patches_are_far():
    patches = np.zeros((10, 3), np.float32)
    patches[7] = [5, 5, 5]
    distances = np.arange(10, dtype=np.float32) / 10
    distances[7] = 9.0
    d = guided_features(patches, distances, k=1)
    assert d.shape == (3 + 3 + 1 + 2,)
    np.testing.assert_allclose(d[:3], [5, 5, 5])  # the single most anomalous patch
    assert 2.5 < d[3] <= 5.0  # the softmax-weighted mean leans to it
    assert d[6] == 9.0 and d[7] == pytest.approx(distances.mean()) and d[8] == pytest.approx(distances.std())


def test_an_enrolled_image_looks_normal_unless_left_out():
    rng = np.random.default_rng(0)
    maps = [_maps(rng) for _ in range(3)]
    from edgetl.anomaly.bank import patch_features

    scales = np.ones(2, np.float32)
    rows = [patch_features(m, NAMES, scales)[0] for m in maps]
    bank = GoodBank(NAMES, scales, np.concatenate(rows))
    origin = np.repeat(np.arange(3), [len(r) for r in rows])
    seen = bank.describe(maps[0])
    left_out = bank.describe(maps[0], origin == 0)
    k = bank.k
    assert seen[-k - 2 : -2].max() < 1e-2  # its own patches are in the bank: distance 0
    assert left_out[-k - 2 : -2].min() > 1.0  # scored against the others, as a new good part is


def test_fit_serve_and_reload_agree_and_tell_defects_apart(tmp_path):
    rng = np.random.default_rng(1)
    maps, y = _set(rng, 12)
    arrays = fit_guided(maps, y, np.ones(len(y), bool), good=0, num_classes=3, options={"max_patches": 512})
    head = head_from_arrays(arrays)
    assert isinstance(head, GuidedHead) and head.inputs == NAMES and len(head.good.bank) == 512

    test_maps, test_y = _set(np.random.default_rng(2), 10, views=1)
    batch = {name: np.stack([m[name] for m in test_maps[0]]) for name in NAMES}
    probs = head(batch)
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == test_y).mean() >= 0.9

    # A batch is searched SEARCH_ROWS images at a time; each answer is what the image gets alone.
    alone = np.stack([head.good.describe({name: batch[name][i] for name in NAMES}) for i in range(30)])
    np.testing.assert_allclose(head.pool(batch), alone, rtol=1e-5, atol=1e-5)

    np.savez(tmp_path / "head.npz", **arrays)
    loaded = load_head(tmp_path / "head.npz")
    assert isinstance(loaded, GuidedHead)
    np.testing.assert_allclose(loaded(batch), probs, atol=1e-6)
    # The bank is held as it is saved (float16); only the search keeps float32 rows.
    assert loaded.good.bank.dtype == np.float16 and np.array_equal(loaded.good.bank, arrays["bank"])
    # The served path reads the same embedding a plain head offers (drift monitoring).
    p, z = probabilities_and_embedding(loaded, batch)
    np.testing.assert_allclose(p, probs, atol=1e-6)
    assert z.shape == (30, len(loaded.mean))


def test_a_plain_head_file_still_loads_as_one(tmp_path):
    np.savez(tmp_path / "head.npz", inputs=np.array(["pooled"]), mean=np.zeros(4), std=np.ones(4), weight=np.eye(2, 4), bias=np.zeros(2))
    head = load_head(tmp_path / "head.npz")
    assert type(head) is LinearHead and head.inputs == ("pooled",)


def test_a_bank_of_nonsense_is_refused(tmp_path):
    arrays = fit_guided(*_set(np.random.default_rng(3), 4), np.ones(12, bool), good=0, num_classes=3, options={"max_patches": 64})
    arrays["bank"] = np.full_like(arrays["bank"], np.nan)
    np.savez(tmp_path / "head.npz", **arrays)
    with pytest.raises(ValueError, match="non-finite"):
        load_head(tmp_path / "head.npz")


def test_too_few_good_images_to_leave_one_out():
    maps, y = _set(np.random.default_rng(4), 3)
    rows = np.ones(len(y), bool)
    rows[np.flatnonzero(y == 0)[1:]] = False
    with pytest.raises(InvalidInput, match="at least 2 good images"):
        fit_guided(maps, y, rows, good=0, num_classes=3, options={})


def test_the_good_class_is_found_by_name_or_option():
    assert good_class(["scratch", "OK", "pit"], {}) == 1
    assert good_class(["pass", "fail"], {}) == 0
    assert good_class(["scratch", "pit"], {}) is None
    assert good_class(["scratch", "pit"], {"good_class": "pit"}) == 1
    with pytest.raises(InvalidInput, match="not a class of this task"):
        good_class(["scratch", "pit"], {"good_class": "fine"})


def test_a_guided_head_measures_distances_in_its_banks_spread_and_older_heads_keep_plain_ones(tmp_path):
    arrays = fit_guided(*_set(np.random.default_rng(5), 6), np.ones(18, bool), good=0, num_classes=3, options={"max_patches": 128})
    head = head_from_arrays(arrays)
    assert head.good.spread is not None and head.good.spread.shape == (len(head.good.bank),) and head.good.spread_power > 0
    probe = {name: m[None] for name, m in _maps(np.random.default_rng(6), defect=1).items()}
    np.savez(tmp_path / "head.npz", **arrays)
    np.testing.assert_allclose(load_head(tmp_path / "head.npz")(probe), head(probe), atol=1e-6)
    # A head written before the spread was kept (edgetl <= stop 23) describes with plain distances.
    older = {k: v for k, v in arrays.items() if k not in ("spread", "spread_power")}
    np.savez(tmp_path / "older.npz", **older)
    assert load_head(tmp_path / "older.npz").good.row_weights is None
    # A spread that does not fit its bank is a damaged file.
    np.savez(tmp_path / "damaged.npz", **{**arrays, "spread": arrays["spread"][:-1]})
    with pytest.raises(ValueError, match="spread"):
        load_head(tmp_path / "damaged.npz")
