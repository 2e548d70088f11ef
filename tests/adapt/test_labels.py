"""The label store: content-addressed images, history, a split that does not move, nothing written on error."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgetl.adapt.labels import LabelStore, split_of
from edgetl.errors import InvalidInput
from edgetl.synthetic import make_images

CLASSES = ("ok", "pit")


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path, tmp_path / "edgetl.db")
    yield s
    s.close()


def png(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def files(tmp_path):
    return sorted(p for p in (tmp_path / "images").rglob("*") if p.is_file()) if (tmp_path / "images").exists() else []


def test_the_same_image_twice_is_one_image(store, tmp_path):
    first = store.add("t", CLASSES, png(1), "ok")
    again = store.add("t", CLASSES, png(1), "ok")
    assert first.new_image and not again.new_image and again.unchanged
    assert len(files(tmp_path)) == 1 and len(store.current("t")) == 1


def test_relabelling_keeps_history(store):
    store.add("t", CLASSES, png(1), "ok", operator="anna")
    result = store.add("t", CLASSES, png(1), "pit", operator="ben", corrects="ok")
    assert result.relabelled
    assert [l.class_name for l in store.current("t")] == ["pit"]
    assert [(c, o) for c, o, _ in store.history("t", result.image_sha256)] == [("ok", "anna"), ("pit", "ben")]


def test_counts_per_class_and_split(store):
    for i in range(10):
        store.add("t", CLASSES, png(i), CLASSES[i % 2])
    counts = store.counts("t")
    assert sum(sum(c.values()) for c in counts.values()) == 10
    assert {k: sum(v.values()) for k, v in counts.items()} == {"ok": 5, "pit": 5}


def test_split_is_fixed_by_the_image_hash(store):
    shas = [store.add("t", CLASSES, png(i), "ok").image_sha256 for i in range(40)]
    before = {l.image_sha256: l.split for l in store.current("t")}
    for i in range(40, 80):
        store.add("t", CLASSES, png(i), "pit")
    after = {l.image_sha256: l.split for l in store.current("t")}
    assert all(after[s] == before[s] == split_of(s) for s in shas)
    assert 0 < sum(v == "val" for v in after.values()) < 40  # about 20 %


@pytest.mark.parametrize(
    "data, class_name, phrase",
    [
        (None, "scratch", "has no class 'scratch'"),
        (b"", "ok", "empty"),
        (b"GIF89a....", "ok", "unsupported image format"),
        ("truncated", "ok", "corrupt PNG"),
    ],
)
def test_bad_labels_write_nothing(store, tmp_path, data, class_name, phrase):
    if data is None:
        data = png(3)
    elif data == "truncated":
        data = png(3)[:60]
    with pytest.raises(InvalidInput, match=phrase):
        store.add("t", CLASSES, data, class_name)
    assert store.current("t") == [] and files(tmp_path) == []


def test_labels_are_per_task(store):
    store.add("a", CLASSES, png(1), "ok")
    store.add("b", CLASSES, png(1), "pit")
    assert [l.class_name for l in store.current("a")] == ["ok"]
    assert [l.class_name for l in store.current("b")] == ["pit"]


def test_synthetic_images_are_distinct_and_deterministic():
    a = [img for _, img in make_images("gravel", ("ok", "crack"), per_class=3, size=64, seed=5)]
    b = [img for _, img in make_images("gravel", ("ok", "crack"), per_class=3, size=64, seed=5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len({x.tobytes() for x in a}) == 6
