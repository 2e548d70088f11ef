"""benchmarks/peers/run.py's judgement: when a cell is edgetl's, and what the run says against issue 12's targets.

The measuring itself needs the peers' virtual environments and minutes of a
quiet machine (BENCHMARKS.md); what is tested here is the rule its tables and
its closing verdict apply to the numbers, on cells made up for the purpose.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "peers" / "run.py"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("peers_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
