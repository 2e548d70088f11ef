"""`edgetl export triton`: the repository's configs parse as Triton model configs, every ONNX loads in
ONNX Runtime, and the ensemble, run step by step as Triton would, answers as the edgetl server does.

No Triton server runs here (no container engine, no GPU); what Triton would do with the files is
reproduced from the ensemble config itself: each step's input and output maps are followed.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc
from tests.adapt_helpers import create_and_label, train
from tests.conftest import TINY


def _config(model_dir) -> model_config_pb2.ModelConfig:
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def _run_ensemble(repo, name: str, pixels: np.ndarray) -> np.ndarray:
    ensemble = _config(repo / name)
    assert ensemble.platform == "ensemble"
    tensors = {ensemble.input[0].name: pixels}
    for step in ensemble.ensemble_scheduling.step:
        config = _config(repo / step.model_name)
        assert config.platform == "onnxruntime_onnx" and config.name == step.model_name
        session = ort.InferenceSession(str(repo / step.model_name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        feeds = {model_input: tensors[ensemble_name] for model_input, ensemble_name in step.input_map.items()}
        assert set(feeds) == {i.name for i in config.input} == {i.name for i in session.get_inputs()}
        results = session.run(list(step.output_map), feeds)
        for model_output, value in zip(step.output_map, results):
            dims = next(o.dims for o in config.output if o.name == model_output)
            assert list(value.shape[1:]) == list(dims)  # the config says what the model gives
            tensors[step.output_map[model_output]] = value
    return tensors[ensemble.output[0].name]


@pytest.mark.parametrize("method", ["head", "lora", "head-int8"])
def test_the_triton_repository_answers_as_the_server_does(server, data_dir, tmp_path, method):
    images = create_and_label(server, task="line9", backbone=TINY, per_class=6, size=64)
    # Global pooling: a guided head (the default with an "ok" class, LoRA's too) is refused (the next test).
    options = {"epochs": 1, "batch_size": 8, "pooling": "global"} if method == "lora" else {"pooling": "global"}
    method, _, precision = method.partition("-")
    if precision:
        options["precision"] = precision
    _, job = train(server, task="line9", method=method, force=True, **options)
    assert job.state == "succeeded"

    repo = tmp_path / "triton"
    done = subprocess.run([sys.executable, "-m", "edgetl", "export", "triton", "--task", "line9", "--data-dir", str(data_dir), str(repo)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "exported task line9 (adapter v1)" in done.stdout and "pixels UINT8 [N, 64, 64, 3]" in done.stdout
    assert sorted(p.name for p in repo.iterdir()) == ["line9", "line9_backbone", "line9_head"]
    assert (repo / "line9" / "1").is_dir() and (repo / "line9_head" / "labels.txt").read_text().split() == ["ok", "pit", "burn"]
    backbone = _config(repo / "line9_backbone")
    accelerator = backbone.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == ("INT8" if precision else "FP16")
    assert backbone.max_batch_size == 8 and backbone.dynamic_batching is not None

    # The same pixels to both: RGB at the backbone's input size, so no resize differs.
    pixels = np.stack([cv2_rgb(img) for _, img in images[::4]])
    triton_scores = _run_ensemble(repo, "line9", pixels)
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    for rgb, scores in zip(pixels, triton_scores):
        raw = image_pb2.RawImage(data=rgb.tobytes(), shape=list(rgb.shape), color_order=image_pb2.COLOR_ORDER_RGB)
        answer = stub.Classify(inference_pb2.ClassifyRequest(task="line9", image=image_pb2.Image(raw=raw)), timeout=30)
        # An INT8 model quantizes the normalised input: normalising in the graph instead of in numpy can move a
        # value across a rounding step, so its scores match to quantization noise, not to float rounding.
        np.testing.assert_allclose(scores, answer.scores, atol=2e-3 if precision else 2e-5)
        assert ["ok", "pit", "burn"][int(np.argmax(scores))] == answer.label


def cv2_rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgr[:, :, ::-1])


def test_export_of_an_unknown_task_is_a_one_line_error(server, data_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgetl", "export", "triton", "--task", "nope", "--data-dir", str(data_dir), str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("edgetl: error: unknown task 'nope'") and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_export_of_a_task_without_an_active_adapter_writes_nothing(server, data_dir, tmp_path):
    create_and_label(server, task="fresh", backbone=TINY, per_class=2, size=64)
    out = tmp_path / "r"
    out.mkdir()
    done = subprocess.run([sys.executable, "-m", "edgetl", "export", "triton", "--task", "fresh", "--data-dir", str(data_dir), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "task 'fresh' has no active adapter to export" in done.stderr and len(done.stderr.splitlines()) == 1
    assert list(out.iterdir()) == []  # no models, no staging directory left behind


@pytest.mark.parametrize(
    "method, options, phrases",
    [
        ("head", {}, ("serves a guided head", "--method head --pooling global")),  # a class named "ok": guided pooling by default
        ("lora", {"epochs": 1, "batch_size": 8}, ("serves a guided head", "--method lora --pooling global")),  # LoRA's guided head on its tuned maps
        ("head", {"pooling": "global", "serve_views": 2}, ("from 2 views (serve_views)", "--serve-views 1")),
    ],
)
def test_export_of_what_triton_cannot_compute_is_refused_with_the_way_out(server, data_dir, tmp_path, method, options, phrases):
    create_and_label(server, task="line9", backbone=TINY, per_class=6, size=64)
    _, job = train(server, task="line9", method=method, **options)
    assert job.state == "succeeded", job.error
    out = tmp_path / "r"
    done = subprocess.run([sys.executable, "-m", "edgetl", "export", "triton", "--task", "line9", "--data-dir", str(data_dir), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert all(phrase in done.stderr for phrase in phrases), done.stderr
    assert not out.exists()
