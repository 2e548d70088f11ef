"""The contract every registered backbone must meet: build -> export -> ORT parity -> shapes.

Parametrised over the whole registry (as timm's tests run over every model):
the built-in EfficientNet-Lite0 and a tiny timm model with random weights
from a local file, through the generic timm plugin.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgetl.backbones.export import EXPORT_FORMAT, OPSET, PARITY_TOL, parity_inputs
from edgetl.backbones.registry import BackboneRegistry
from edgetl.backbones.spec import LOGITS, POOLED
from edgetl.runtime import store as store_module
from edgetl.runtime.store import ModelStore
from tests.conftest import _SESSION_ROOT, make_settings

REGISTRY = BackboneRegistry.from_settings(make_settings(_SESSION_ROOT / "contract"))


@pytest.fixture(scope="module")
def records(session_store):
    store = ModelStore(session_store)
    return {b.name: store.find(b) for b in REGISTRY}


@pytest.mark.parametrize("name", REGISTRY.names())
def test_export_matches_torch_and_the_spec(name, records):
    backbone = REGISTRY.get(name)
    spec = backbone.spec
    record = records[name]
    assert record is not None, "the session store should hold every backbone's export"

    model = onnx.load(str(record.onnx_path))
    assert [o.name for o in model.graph.output] == list(spec.output_names)
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param, "the batch axis must be dynamic"

    session = ort.InferenceSession(str(record.onnx_path), providers=["CPUExecutionProvider"])
    torch_module = backbone.build().eval()
    for batch in (1, 3):
        x = parity_inputs(spec, batch)
        with torch.no_grad():
            expected = {k: v.numpy() for k, v in torch_module(torch.from_numpy(x)).items()}
        got = dict(zip(spec.output_names, session.run(list(spec.output_names), {"image": x})))
        for out in spec.output_names:
            assert got[out].shape == expected[out].shape
            limit = PARITY_TOL * max(1.0, float(np.abs(expected[out]).max()))
            assert float(np.abs(got[out] - expected[out]).max()) <= limit, out
    h, w = spec.input_size
    assert got[POOLED].ndim == 2
    maps = [got[m] for m in spec.feature_maps]
    assert all(m.ndim == 4 and m.shape[2] < h and m.shape[3] < w for m in maps)
    assert len({m.shape[2:] for m in maps}) == len(maps), "feature maps should come from different scales"
    if spec.class_names:
        assert got[LOGITS].shape == (3, len(spec.class_names))


@pytest.mark.parametrize("name", REGISTRY.names())
def test_manifest_describes_the_export(name, records):
    backbone, record = REGISTRY.get(name), records[name]
    m = record.manifest
    assert m["backbone"] == name and m["plugin"] == backbone.plugin
    assert m["opset"] == OPSET and m["export_format"] == EXPORT_FORMAT
    assert m["input"]["shape"] == ["batch", 3, *backbone.spec.input_size]
    assert set(m["outputs"]) == set(backbone.spec.output_names)
    assert {"torch", "onnx", "onnxruntime", "edgetl", "python"} <= set(m["tools"])
    assert len(m["weights_sha256"]) == 64 and len(m["onnx_sha256"]) == 64


def test_store_constants_match_the_exporter():
    assert (store_module.OPSET, store_module.EXPORT_FORMAT) == (OPSET, EXPORT_FORMAT)


def test_efficientnet_lite0_is_imagenet_pretrained_in_torch(chelsea_rgb):
    """The weights mapping (DESIGN.md): chelsea is class 285 with p ~ 0.78."""
    import cv2

    model = REGISTRY.get("efficientnet_lite0").build().eval()
    x = cv2.resize(chelsea_rgb, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
    with torch.no_grad():
        p = model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))[LOGITS].softmax(-1)[0]
    assert int(p.argmax()) == 285 and float(p.max()) == pytest.approx(0.78, abs=0.03)
