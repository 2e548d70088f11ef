"""benchmarks/peers/ab.py: B over A pairs each of B's slices with A's slice of the same pass, and measures real servers.

Whether B is faster needs minutes of a quiet machine (BENCHMARKS.md); here the
arithmetic is checked on made-up slices, and a short run drives a real minimal
gRPC server (`front_server.py`) over loopback as both A and B.
"""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import builtin_export
from tests.peers_helpers import PEERS, front_server, load_script, peer_env


@pytest.fixture(scope="module")
def ab():
    return load_script("ab")


def _cell(row, r, slices, c=1):
    return {"row": row, "input": "jpeg", "concurrency": c, "round": r, "per_s": sum(slices) / len(slices), "slices": slices}


def test_b_over_a_pairs_slices_of_the_same_pass_and_keeps_rounds_apart(ab):
    cells = [
        _cell("A", 0, [100, 80, 120]), _cell("B", 0, [110, 84, 120]),
        _cell("A", 1, [90, 90]), _cell("B", 1, [81, 99]),
    ]
    assert ab.b_over_a(cells) == {("jpeg", 1): [pytest.approx([1.10, 1.05, 1.0]), pytest.approx([0.9, 1.1])]}


def test_the_report_gives_both_rates_the_ratio_with_its_interval_and_passes_ahead(ab):
    cells = [_cell("A", r, [100.0] * 4) for r in range(3)] + [_cell("B", r, [105.0, 104.0, 106.0, 105.0]) for r in range(3)]
    text = ab.report({"machine": "m", "date": "d", "pin": "p", "a": "x:1", "b": "x:2", "api": "classify", "seconds": 2, "rounds": 3, "cells": cells})
    assert "A x:1, B x:2; classify; 3 rounds of 2 s a cell" in text
    assert "| jpeg, c=1 | 100.0 | 105.0 | 1.050 [1.045–1.055] | 12/12 |" in text


def test_without_two_addresses_it_says_what_it_needs():
    got = subprocess.run([sys.executable, str(PEERS / "ab.py"), "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert got.returncode == 2 and "give the two servers' addresses, A and B" in got.stderr


def test_a_short_run_against_a_real_server_pairs_every_slice(ab, session_store, chelsea_rgb, tmp_path, monkeypatch):
    _, record = builtin_export(session_store)
    env = peer_env(record, tmp_path)
    rgb = np.ascontiguousarray(cv2.resize(chelsea_rgb, (224, 224), interpolation=cv2.INTER_AREA))
    jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1])[1].tobytes()
    # The test image, without making the data directory's export: the session's is the same model.
    monkeypatch.setattr(ab.peers, "prepare_model", lambda data_dir, workdir: (record.onnx_path, None, jpeg, rgb))
    monkeypatch.setattr(ab.os, "sched_setaffinity", lambda pid, cpus: None)  # leave the test process's CPUs alone
    with front_server("aio-worker", env, tmp_path) as address:
        args = type("Args", (), dict(
            a=address, b=address, api="classify", input=["jpeg", "pixels"], concurrency=[2], seconds=0.6, rounds=2, slice=0.2,
            pin="none", data_dir=tmp_path, seed=0,
        ))()
        results = ab.measure(args)
    assert {(c["row"], c["input"], c["round"]) for c in results["cells"]} == {
        (row, kind, r) for row in "AB" for kind in ("jpeg", "pixels") for r in range(2)
    }
    assert all(len(c["slices"]) == 3 and c["n"] > 0 for c in results["cells"])
    ratios = ab.b_over_a(results["cells"])
    assert set(ratios) == {("jpeg", 2), ("pixels", 2)}
    assert all(len(rounds) == 2 and all(len(r) == 3 and all(x > 0 for x in r) for r in rounds) for rounds in ratios.values())
    assert "| pixels, c=2 |" in ab.report(results)
