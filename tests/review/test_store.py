"""The review store on real SQLite and real files: filters, paging, the disk cap, crash leftovers."""

from __future__ import annotations

import numpy as np
import pytest

from edgetl.errors import InvalidInput, NotFound
from edgetl.review.store import Capture, Query, ReviewStore
from tests.conftest import encode


def _png(seed: int, size: int = 32) -> bytes:
    return encode(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


def _capture(seed: int, score: float, predicted="ok", reasons=("uncertain",), at=0.0, task="weld", size=32) -> Capture:
    return Capture(task, _png(seed, size), "png", size, size, "1", predicted, score, 0.1, [score, 1 - score], list(reasons), "cam-1", f"r{seed}", 1000.0 + at)


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(tmp_path, tmp_path / "edgetl.db", lambda sha, fmt: tmp_path / "images" / sha[:2] / f"{sha}.png")
    yield s
    s.close()


def test_add_writes_the_file_before_the_row_and_lists_with_filters(store):
    ids = [store.add(_capture(i, score, predicted, reasons, at=i), 1 << 30)[0] for i, (score, predicted, reasons) in enumerate([
        (0.55, "ok", ("uncertain",)), (0.90, "crack", ("random",)), (0.40, "crack", ("uncertain", "random")), (0.70, "ok", ("flagged",)),
    ])]
    item = store.get(ids[0])
    assert store.image_path(item.image_sha256, "png").is_file() and store.image(item) == _png(0)
    assert (item.caller, item.request_id, item.reasons, item.state) == ("cam-1", "r0", ["uncertain"], "pending")

    def listed(**kw):
        items, total, _ = store.list(Query("weld", **kw))
        return [i.id for i in items], total

    assert listed() == ([ids[2], ids[0], ids[3], ids[1]], 4)                      # least sure first
    assert listed(order="-time")[0] == ids[::-1]
    assert listed(reasons=("random",)) == ([ids[2], ids[1]], 2)
    assert listed(reasons=("flagged", "random"))[1] == 3
    assert listed(predicted="crack", max_score=0.5) == ([ids[2]], 1)
    assert listed(min_score=0.6)[0] == [ids[3], ids[1]]
    with pytest.raises(InvalidInput, match="unknown review state"):
        store.list(Query("weld", state="bogus"))
    with pytest.raises(InvalidInput, match="order"):
        store.list(Query("weld", order="size"))
    with pytest.raises(NotFound):
        store.get(12345)


def test_keyset_paging_does_not_skip_items_when_earlier_ones_are_resolved(store):
    ids = [store.add(_capture(i, 0.1 + i * 0.01, at=i), 1 << 30)[0] for i in range(7)]
    first, total, token = store.list(Query("weld", page_size=3))
    assert [i.id for i in first] == ids[:3] and total == 7 and token
    for item in first:  # an operator resolves the first page while the next is fetched
        store.mark(item, "accepted", "anna", "ok", 1)
    second, total, token = store.list(Query("weld", page_size=3, page_token=token))
    assert [i.id for i in second] == ids[3:6] and total == 4
    third, _, token = store.list(Query("weld", page_size=3, page_token=token))
    assert [i.id for i in third] == ids[6:] and token == ""
    with pytest.raises(InvalidInput, match="page_token"):
        store.list(Query("weld", page_token="not-a-token"))
    with pytest.raises(InvalidInput, match="page_token"):
        store.list(Query("weld", order="time", page_token=store.list(Query("weld", state="all", page_size=1))[2]))


def test_disk_cap_evicts_oldest_unreviewed_skipped_first(store):
    size = len(_png(0, 48))
    cap = size * 3 + 10
    ids = [store.add(_capture(i, 0.5, at=i, size=48), cap)[0] for i in range(3)]
    store.mark(store.get(ids[1]), "skipped", "anna")
    new_id, evicted = store.add(_capture(3, 0.5, at=3, size=48), cap)
    assert [e.id for e in evicted] == [ids[1]]                      # the skipped one goes first
    assert store.get(ids[1]).state == "evicted" and not store.image_path(evicted[0].image_sha256, "png").exists()
    _, evicted = store.add(_capture(4, 0.5, at=4, size=48), cap)
    assert [e.id for e in evicted] == [ids[0]]                      # then the oldest pending
    with pytest.raises(NotFound, match="disk cap"):
        store.image(store.get(ids[0]))
    with pytest.raises(InvalidInput, match="larger than"):
        store.add(_capture(9, 0.5, size=48), size - 1)
    assert store.summary(["weld"])["weld"]["stored_bytes"] <= cap


def test_an_image_shared_by_two_items_stays_until_both_are_resolved(store):
    a, _ = store.add(_capture(5, 0.5), 1 << 30)
    b, _ = store.add(_capture(5, 0.4), 1 << 30)
    item = store.get(a)
    store.mark(item, "rejected", "anna")
    assert store.image(store.get(b)) == _png(5)
    store.mark(store.get(b), "rejected", "anna")
    assert not store.image_path(item.image_sha256, "png").exists()


def test_sweep_removes_only_files_no_unreviewed_item_needs(store):
    keep, _ = store.add(_capture(1, 0.5), 1 << 30)
    kept = store.image_path(store.get(keep).image_sha256, "png")
    orphan = store.image_path("ab" * 32, "png")          # a crash between the row update and the delete
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    torn = kept.parent / f".{kept.name}.123.tmp"          # a crash inside write_bytes_atomic
    torn.write_bytes(b"half")
    assert store.sweep() == 2
    assert kept.is_file() and not orphan.exists() and not torn.exists()


def test_summary_and_sampled_verdicts(store):
    ids = [store.add(_capture(i, 0.5, predicted="ok", reasons=r), 1 << 30)[0] for i, r in enumerate([("random",), ("random",), ("uncertain",), ("random", "uncertain")])]
    store.mark(store.get(ids[0]), "accepted", "anna", "ok", 1)
    store.mark(store.get(ids[1]), "relabelled", "anna", "crack", 2)
    store.mark(store.get(ids[2]), "relabelled", "anna", "crack", 3)   # not sampled: does not count
    store.mark(store.get(ids[3]), "rejected", "anna")                  # unusable: does not count
    assert [(v, right) for v, right, _ in store.sampled_verdicts("weld")] == [("1", True), ("1", False)]
    assert store.summary(["weld"])["weld"] == {"pending": 0, "skipped": 0, "resolved": 4, "pending_by_reason": {}, "stored_bytes": 0}
