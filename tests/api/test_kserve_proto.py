"""Our KServe v2 proto, written from the specification, is wire-identical to the one Triton's client ships.

Every message we declare is compared field by field (name, number, type,
repeated or not, message type) with tritonclient's, and every RPC we declare
must exist in Triton's service with the same request and response types.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

from edgetl.api.kserve import grpc_service_pb2 as ours
from tritonclient.grpc import service_pb2 as triton


def _shape(message) -> dict:
    """name -> (number, type, repeated, message type) for each field, nested messages included."""
    out = {}
    for field in message.fields:
        kind = field.message_type.full_name if field.type == FieldDescriptor.TYPE_MESSAGE else None
        out[field.name] = (field.number, field.type, field.is_repeated if hasattr(field, "is_repeated") else field.label == 3, kind)
    for nested in message.nested_types:
        out[nested.name] = _shape(nested)
    return out


def test_package_and_service_name():
    assert ours.DESCRIPTOR.package == triton.DESCRIPTOR.package == "inference"
    assert ours.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name == "inference.GRPCInferenceService"


def test_every_message_matches_tritons():
    assert len(ours.DESCRIPTOR.message_types_by_name) >= 20
    for name, message in ours.DESCRIPTOR.message_types_by_name.items():
        assert name in triton.DESCRIPTOR.message_types_by_name, f"{name} is not in the specification"
        assert _shape(message) == _shape(triton.DESCRIPTOR.message_types_by_name[name]), name


def test_every_rpc_matches_tritons():
    theirs = triton.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name
    methods = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
    assert {m.name for m in methods} == {
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
        "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
    }
    for method in methods:
        other = theirs[method.name]
        assert (method.input_type.full_name, method.output_type.full_name) == (other.input_type.full_name, other.output_type.full_name)
        assert (method.client_streaming, method.server_streaming) == (other.client_streaming, other.server_streaming)


def test_a_message_round_trips_between_the_two():
    request = ours.ModelInferRequest(model_name="line4", id="r1", raw_input_contents=[b"\x03\x00\x00\x00abc"])
    request.inputs.add(name="images", datatype="BYTES", shape=[1])
    request.parameters["k"].int64_param = 7
    decoded = triton.ModelInferRequest.FromString(request.SerializeToString())
    assert decoded.inputs[0].name == "images" and decoded.parameters["k"].int64_param == 7
    assert ours.ModelInferRequest.FromString(decoded.SerializeToString()) == request
