"""Untrusted ONNX files: external data outside their directory and custom-op domains are refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgetl.errors import UntrustedFile
from edgetl.runtime.onnxcheck import check_model


def _model(domain: str = "", initializer=None, function_domain: str | None = None):
    node = helper.make_node("Relu" if not domain else "Evil", ["x"], ["y"], domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], initializer=[initializer] if initializer is not None else [])
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    functions = []
    if function_domain:
        functions = [helper.make_function(function_domain, "Evil", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])], [helper.make_opsetid("", 18)])]
    return helper.make_model(graph, opset_imports=opsets, functions=functions)


def _external(location: str):
    tensor = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def test_a_plain_model_passes(tmp_path):
    onnx.save(_model(), tmp_path / "m.onnx")
    check_model(tmp_path / "m.onnx")


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../x.bin"])
def test_external_data_outside_the_directory_is_refused(tmp_path, location):
    onnx.save(_model(initializer=_external(location)), tmp_path / "m.onnx")
    with pytest.raises(UntrustedFile, match="outside its own directory"):
        check_model(tmp_path / "m.onnx")


def test_external_data_beside_the_model_is_allowed(tmp_path):
    onnx.save(_model(initializer=_external("weights.bin")), tmp_path / "m.onnx")
    check_model(tmp_path / "m.onnx")


def test_a_custom_op_domain_is_refused(tmp_path):
    onnx.save(_model(domain="com.evil.ops"), tmp_path / "m.onnx")
    with pytest.raises(UntrustedFile, match="custom-op library"):
        check_model(tmp_path / "m.onnx")


def test_a_domain_defined_by_the_models_own_functions_is_allowed(tmp_path):
    onnx.save(_model(domain="pkg.local", function_domain="pkg.local"), tmp_path / "m.onnx")
    check_model(tmp_path / "m.onnx")


@pytest.mark.parametrize("data", [b"\xff" * 20, b"\x0a\xff\xff\xff\xff\x0f"])
def test_garbage_is_not_a_model(tmp_path, data):
    (tmp_path / "m.onnx").write_bytes(data)
    with pytest.raises(UntrustedFile, match="not a valid ONNX file"):
        check_model(tmp_path / "m.onnx")
