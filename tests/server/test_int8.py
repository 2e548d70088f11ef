"""INT8 adapters through a real server: quantized with ONNX Runtime, calibrated on the task's labels, gated on FP32.

Real training processes and real quantization (onnxruntime.quantization);
the speed and accuracy figures are in benchmarks/int8.py, not here.
"""

from __future__ import annotations

import json

import grpc
import numpy as np
import onnx
import pytest

from edgetl.adapt.gate import gate, paired_comparison
from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, model_pb2, model_pb2_grpc
from tests.adapt_helpers import classify, create_and_label, train
from tests.conftest import TINY


def _quantized(path) -> bool:
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    return {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_an_int8_head_runs_its_own_quantized_backbone_and_survives_a_restart(server_factory, data_dir):
    # The server-wide default ([training] precision), not a job option, asks for INT8 here.
    first = server_factory(precision="int8")
    images = create_and_label(first)
    events, job = train(first)
    assert job.state == "succeeded" and job.activated, job.error
    assert "INT8 validation accuracy" in job.gate and "FP32" in job.gate and "image(s) lost" in job.gate
    assert [e for e in events if e.phase == "quantize"]

    version_dir = data_dir / "adapters" / "parts" / job.version
    manifest = json.loads((version_dir / "manifest.json").read_text())
    counts = adapt_pb2_grpc.LabelServiceStub(first.channel).GetLabelCounts(adapt_pb2.GetLabelCountsRequest(task="parts"), timeout=10)
    int8 = manifest["onnx"]["int8"]
    assert manifest["options"]["precision"] == "int8"
    assert int8["calibration_images"] == counts.train  # the training split only: the gate's images stay unseen
    assert int8["bytes"] < int8["float_bytes"] / 3  # 8-bit weights
    assert _quantized(version_dir / "model.onnx") and _quantized(version_dir / "holdout" / "model.onnx")
    assert {"model.onnx", "holdout/model.onnx", "head.npz", "holdout/head.npz"} <= set(manifest["files"])
    assert 0.0 <= manifest["options"]["int8"]["fp32_metrics"]["accuracy"] <= 1.0

    engine = first.server.engine
    assert engine.adapters["parts"].batcher is not engine.batchers["efficientnet_lite0"]  # its own 8-bit session
    before = [classify(first, img) for _, img in images[:6]]
    assert {a.adapter_version for a in before} == {job.version}
    accuracy = np.mean([classify(first, img).label == kind for kind, img in images])
    assert accuracy >= 0.8  # on its own labels: the quantized backbone still carries the defects

    first.stop()
    second = server_factory()  # the adapter says int8; the server's default does not matter any more
    after = [classify(second, img) for _, img in images[:6]]
    for a, b in zip(before, after):
        assert b.adapter_version == job.version
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-6)


def test_an_int8_lora_adapter_quantizes_both_its_models(server, data_dir):
    create_and_label(server, task="tinytask", backbone=TINY, size=64, per_class=8)
    _, job = train(server, task="tinytask", method="lora", epochs=2, batch_size=8, precision="int8")
    assert job.state == "succeeded", job.error
    assert "INT8 validation accuracy" in job.gate
    version_dir = data_dir / "adapters" / "tinytask" / job.version
    manifest = json.loads((version_dir / "manifest.json").read_text())
    counts = adapt_pb2_grpc.LabelServiceStub(server.channel).GetLabelCounts(adapt_pb2.GetLabelCountsRequest(task="tinytask"), timeout=10)
    # The holdout model is calibrated on the training split, the served model on every label.
    assert manifest["holdout"]["onnx"]["int8"]["calibration_images"] == counts.train
    assert manifest["onnx"]["int8"]["calibration_images"] == counts.train + counts.val == 24
    assert _quantized(version_dir / "model.onnx") and _quantized(version_dir / "holdout" / "model.onnx")
    assert not (version_dir / "float.onnx").exists() and not (version_dir / "holdout" / "float.onnx").exists()
    # The quantized model answers from its own classifier: no guided head on its maps, and the job says why.
    assert manifest["options"]["pooling"] == "global" and "int8" in manifest["options"]["pooling_reason"]
    assert "head.npz" not in manifest["files"] and "holdout/head.npz" not in manifest["files"]
    if job.activated:
        r = classify(server, np.zeros((64, 64, 3), np.uint8), task="tinytask")
        assert r.adapter_version == job.version and len(r.scores) == 3

    # Asked for both, the job fails before training and says which to drop; the task keeps serving.
    _, refused = train(server, task="tinytask", method="lora", epochs=1, batch_size=8, precision="int8", pooling="guided", force=True)
    assert refused.state == "failed" and "guided pooling is for float LoRA" in refused.error
    assert classify(server, np.zeros((64, 64, 3), np.uint8), task="tinytask").label


@pytest.mark.parametrize(
    "kind, precision, phrase",
    [
        ("classify", "fp16", "precision must be one of fp32, int8, got 'fp16'"),
        ("anomaly", "int8", "precision int8 is for classifier adapters"),
    ],
)
def test_a_precision_the_task_cannot_have_is_refused_before_any_job(server, kind, precision, phrase):
    model_pb2_grpc.ModelServiceStub(server.channel).CreateTask(
        model_pb2.CreateTaskRequest(name="t", kind=kind, class_names=[] if kind == "anomaly" else ["ok", "bad"]), timeout=60
    )
    stub = adapt_pb2_grpc.TrainingServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.StartTraining(adapt_pb2.StartTrainingRequest(task="t", method="auto", options=adapt_pb2.TrainingOptions(precision=precision)), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and phrase in info.value.details()
    assert not stub.ListJobs(adapt_pb2.ListJobsRequest(task="t"), timeout=10).jobs
    assert classify(server, np.zeros((32, 32, 3), np.uint8), task="imagenet").label  # still serving


def _done(int8: float, fp32: float | None, active: float | None = None) -> dict:
    done = {"metrics": {"accuracy": int8}}
    if fp32 is not None:
        done["fp32_metrics"] = {"accuracy": fp32}
    if active is not None:
        done["active_metrics"] = {"accuracy": active}
    return done


def test_the_gate_keeps_an_int8_adapter_that_quantization_made_worse_as_a_candidate():
    activate, why = gate(_done(0.80, 0.90), force=False, tolerance=0.0)
    assert not activate and "quantization costs accuracy" in why and "0.800 against 0.900" in why
    # Within the tolerance an operator set, it passes, and says what it cost.
    activate, why = gate(_done(0.80, 0.85), force=False, tolerance=0.05)
    assert activate and "0.800 against 0.850" in why
    # Better than the active adapter does not excuse a quantization loss.
    assert not gate(_done(0.80, 0.90, active=0.70), force=False, tolerance=0.0)[0]
    # Level with FP32 but worse than the active adapter: the usual rule still holds.
    activate, why = gate(_done(0.80, 0.80, active=0.90), force=False, tolerance=0.0)
    assert not activate and "< active 0.900" in why
    # --force activates, and the message keeps the evidence.
    activate, why = gate(_done(0.80, 0.90), force=True, tolerance=0.0)
    assert activate and "--force" in why and "0.800 against 0.900" in why
    # A float adapter's message does not mention INT8.
    assert "INT8" not in gate(_done(0.9, None), force=False, tolerance=0.0)[1]


def test_the_int8_gate_judges_image_by_image_so_two_borderline_flips_are_not_a_loss():
    truth = [0, 0, 0, 0, 1, 1]
    fp32 = [0, 0, 0, 0, 0, 1]
    int8 = [1, 1, 0, 0, 1, 1]  # loses two images FP32 got right, gains one
    paired = paired_comparison(truth, fp32, int8)
    assert paired == {"lost": 2, "gained": 1, "p": 0.5}  # P(at least 2 of 3 | a coin) = 4/8
    done = {**_done(4 / 6, 5 / 6), "int8_paired": paired}
    activate, why = gate(done, force=False, tolerance=0.0)
    assert activate and "2 image(s) lost, 1 gained; p = 0.50" in why and "within chance" in why
    # Five lost and none gained is not chance (p = 1/32): kept as a candidate.
    lost_five = paired_comparison([0] * 5, [0] * 5, [1] * 5)
    assert lost_five == {"lost": 5, "gained": 0, "p": 1 / 32}
    activate, why = gate({**_done(0.75, 0.95), "int8_paired": lost_five}, force=False, tolerance=0.0)
    assert not activate and "quantization costs accuracy" in why and "5 image(s) lost" in why
    # No disagreement at all: nothing to test, nothing lost.
    assert paired_comparison([0, 1], [0, 1], [0, 1]) == {"lost": 0, "gained": 0, "p": 1.0}
