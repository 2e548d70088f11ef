"""benchmarks/peers/run.py's judgement: when a cell is edgetl's, and what the run says against issue 12's targets.

The measuring itself needs the peers' virtual environments and minutes of a
quiet machine (BENCHMARKS.md); what is tested here is the rule its tables and
its closing verdict apply to the numbers, on cells made up for the purpose.
"""

from __future__ import annotations

import pytest

from tests.peers_helpers import load_script


@pytest.fixture(scope="module")
def run():
    return load_script("run")


CLASSIFY, KSERVE, RAW = "edgetl · edgetl.v1 Classify", "kserve · KServe v2", "raw ONNX Runtime in-process"


def cells(rates_by_round: list[dict[str, float]], kind: str = "jpeg", c: int = 4) -> list[dict]:
    return [
        {"row": row, "input": kind, "concurrency": c, "round": r, "per_s": per_s}
        for r, rates in enumerate(rates_by_round)
        for row, per_s in rates.items()
    ]


def test_a_lead_must_be_larger_than_the_rounds_range(run):
    assert run.leads([1.05, 1.06, 1.07])  # 0.05 above 1, a range of 0.02
    assert not run.leads([1.01, 1.06, 1.10])  # ahead in every round, but by less than the scatter
    assert not run.leads([0.99, 1.00, 1.00])
    assert not run.leads([])


def test_ratios_pair_each_round_with_the_fastest_peer_of_its_own_block(run):
    got = run.paired_ratios(
        cells([{CLASSIFY: 110, KSERVE: 100, "pytriton · KServe v2": 90, RAW: 120}, {CLASSIFY: 99, KSERVE: 90, RAW: 100}])
    )
    ratios = got[("jpeg", 4, CLASSIFY)]
    assert ratios["peer"] == pytest.approx([1.10, 1.10])
    assert ratios["raw"] == pytest.approx([110 / 120, 0.99])


def test_no_peer_measured_no_ratios(run):
    assert run.paired_ratios(cells([{CLASSIFY: 110, RAW: 120}])) == {}
    assert run.verdict(cells([{CLASSIFY: 110, RAW: 120}])) == []


def test_the_verdict_counts_cells_led_and_cells_near_the_raw_limit(run):
    led = cells([{CLASSIFY: 110, KSERVE: 100, RAW: 115}] * 3, c=4)  # 1.10 every round: led; 0.96 of raw
    level = cells([{CLASSIFY: 101, KSERVE: 100, RAW: 120}, {CLASSIFY: 104, KSERVE: 100, RAW: 120}], c=16)  # 0.84 and 0.87 of raw: median 0.85
    one_caller = cells([{CLASSIFY: 90, KSERVE: 100, RAW: 100}], c=1)  # behind; c=1 is not held to the raw limit
    variant = [dict(cell, row="edgetl[b1] · edgetl.v1 Classify") for cell in level]  # an A/B variant is not edgetl's row
    text = " ".join(run.verdict(led + level + one_caller + variant))
    assert "1 of 3 cells (c=1: 0 of 1; c=4: 1 of 1; c=16: 0 of 1)" in text
    assert "1 of 2 cells; the lowest 0.85 (edgetl · edgetl.v1 Classify, jpeg, c=16)" in text


def test_the_report_ends_with_the_verdict(run):
    results = {
        "machine": "test", "date": "2026-12-06", "pin": "none", "ort_threads": 1, "image": "a cat",
        "seconds": 1, "rounds": 1, "slice": 0.5,
        "cells": [dict(cell, p50_ms=9.0) for cell in cells([{CLASSIFY: 110, KSERVE: 100, RAW: 115}])],
        "rss_mb": {"edgetl": 210.0, "kserve": 227.0},
    }
    report = run.report(results)
    assert "| edgetl · edgetl.v1 Classify | **1.10 [1.10–1.10]** | 0.96 [0.96–0.96] |" in report
    assert "Resident memory after the run (with worker processes): edgetl 210 MB, kserve 227 MB" in report
    assert report.splitlines()[-1].startswith("**Against the targets**")  # the last word, after the memory


class _Raw:
    """Stands in for RawLimit: answers a slice at once and records the order slices were asked in."""

    def __init__(self, log: list):
        self.log = log

    def measure(self, kind, c, seconds):
        self.log.append(("raw", kind, c))
        return {"n": 50, "elapsed": 0.5, "per_s": 100.0, "latencies_ms": [10.0] * 50}


def test_the_raw_limit_is_a_row_of_the_slices(run):
    log: list = []

    def factory(address, jpeg, pixels, kind):
        def call():
            log.append((address, kind))
            return run.EXPECTED_LABEL

        return call

    got = run.interleaved([("server", "here", factory)], "jpeg", 1, b"", None, 4, 0.02, run.random.Random(0), _Raw(log))
    assert set(got) == {"server", RAW}
    assert len(got[RAW]["slices"]) == 4 and got[RAW]["per_s"] == pytest.approx(100.0)
    raw_at = [i for i, entry in enumerate(log) if entry[0] == "raw"]
    assert len(raw_at) == 4
    assert any(entry[0] == "here" for entry in log[raw_at[0] : raw_at[-1]])  # the server measured between the raw slices


def test_slices_against_a_sliced_raw_limit(run):
    block = [
        {"row": CLASSIFY, "input": "jpeg", "concurrency": 4, "round": 0, "per_s": 95, "slices": [95, 90]},
        {"row": KSERVE, "input": "jpeg", "concurrency": 4, "round": 0, "per_s": 80, "slices": [80, 80]},
        {"row": RAW, "input": "jpeg", "concurrency": 4, "round": 0, "per_s": 100, "slices": [100, 100]},
    ]
    text = "\n".join(run.slice_paired(block, ["jpeg"], [4]))
    assert "| edgetl · API | c=4 vs fastest peer | c=4 vs raw |" in text
    assert "; 2/2 | 0.925 [" in text  # ahead of the peer in both slices; 0.95 and 0.90 of raw
    assert "; 0/2 |" in text


def test_the_slice_interval_keeps_the_rounds_apart(run):
    """Slices of a round move together: the interval spans what the rounds disagree on, not only slice noise."""
    rounds = [[0.97] * 8, [1.07] * 8, [1.04] * 8]
    median, low, high = run.clustered_median_interval(rounds)
    assert median == pytest.approx(1.04)
    # Each round alone is drawn three times in 1 of 27 resamples (3.7 %, more than the 2.5 % tails),
    # so the interval reaches from the slowest round to the fastest; 24 independent slices would not.
    assert low == pytest.approx(0.97) and high == pytest.approx(1.07)
    assert run.clustered_median_interval([[1.1, 1.2], []]) == (pytest.approx(1.15), pytest.approx(1.1), pytest.approx(1.2))


def test_the_raw_limit_process_runs_the_model_for_a_slice(run, tmp_path, session_store, chelsea_rgb):
    """The real RawLimit on the built-in export: loads, answers a short slice, and stops when closed."""
    import json

    import cv2
    import numpy as np

    from edgetl.backbones import imagenet_class_names
    from tests.conftest import builtin_export

    _, record = builtin_export(session_store)
    spec = record.manifest["spec"]
    (tmp_path / "spec.json").write_text(
        json.dumps({k: spec[k] for k in ("input_size", "color_order", "mean", "std")} | {"class_names": list(imagenet_class_names())})
    )
    rgb = cv2.resize(chelsea_rgb, (224, 224))
    (tmp_path / "image.jpg").write_bytes(cv2.imencode(".jpg", rgb[:, :, ::-1])[1].tobytes())
    np.save(tmp_path / "pixels.npy", rgb)
    raw = run.RawLimit(tmp_path, record.onnx_path, None)
    try:
        got = raw.measure("jpeg", 2, 0.3)
        assert got["n"] > 0 and len(got["latencies_ms"]) == got["n"] and got["per_s"] > 0
        assert raw.measure("pixels", 1, 0.2)["n"] > 0
    finally:
        raw.close()
    assert raw._proc.poll() is not None


def test_a_raw_limit_that_cannot_start_says_why(run, tmp_path):
    """Its stderr goes to a file (a full pipe would stall it); a failed start raises with that file's end."""
    with pytest.raises(RuntimeError, match=r"(?s)raw limit failed: .*No such file.*image\.jpg"):
        run.RawLimit(tmp_path, tmp_path / "missing.onnx", None)
