"""benchmarks/batch_size.py: every batch size and the callers-at-once row in its table, each run for real.

Its figures are timings and are not checked here (no timed assertions); what
is checked is that each row runs the model it names and the table reports
each against batch 1 with one caller.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from benchmarks import batch_size


@pytest.fixture
def tiny_model(tmp_path):
    """images [N, 3, 8, 8] -> logits [N, 3] (the mean of each plane): a model that runs in microseconds."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["logits"], axes=[2, 3], keepdims=0)],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    return path


def test_callers_at_once_give_a_time_per_image_even_when_the_time_is_up_at_once(tiny_model):
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    x = np.ones((2, 3, 8, 8), np.float32)
    assert batch_size._ms_per_image(session, "images", x, 0.05, callers=3) > 0
    # No time at all: every caller still runs once, so there are images to divide by.
    assert batch_size._ms_per_image(session, "images", x, 0.0, callers=3) > 0


def test_the_table_has_every_batch_and_the_callers_row(tiny_model, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["batch_size.py", "--model", str(tiny_model), "--cpu", "-1", "--seconds", "0.02", "--rounds", "1", "--callers", "3"])
    batch_size.main()
    rows = re.findall(r"^\| (\d+) \| (\d+) \| [\d.]+ \[[\d.]+–[\d.]+\] \| \d+ \| ([\d.]+) \|$", capsys.readouterr().out, re.M)
    assert [(int(b), int(c)) for b, c, _ in rows] == [(1, 1), (2, 1), (4, 1), (8, 1), (1, 3)]
    assert rows[0][2] == "1.000"  # the first row is what the others are measured against
