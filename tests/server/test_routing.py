"""One table of every service's methods (edgetl.server.routing), in place of gRPC's per-method registration."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pool

from edgetl.api.v1 import inference_pb2_grpc
from edgetl.server.routing import MethodTable


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str):
        self.method = method
        self.invocation_metadata = ()


def test_the_table_answers_a_generated_service_from_its_methods():
    table = MethodTable()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(inference_pb2_grpc.InferenceServiceServicer(), table)
    handler = table.service(_Details("/edgetl.v1.InferenceService/Classify"))
    assert handler is not None and handler.unary_unary is not None and not handler.request_streaming
    stream = table.service(_Details("/edgetl.v1.InferenceService/ClassifyStream"))
    assert stream.request_streaming and stream.response_streaming
    assert "/edgetl.v1.InferenceService/ClassifyTasks" in table.methods
    assert table.service(_Details("/edgetl.v1.InferenceService/NoSuchMethod")) is None


def test_a_handler_added_without_its_methods_is_still_asked():
    table = MethodTable()
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    table.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("plain.Service", {"Echo": handler})])
    assert table.methods == []
    assert table.service(_Details("/plain.Service/Echo")) is handler
    assert table.service(_Details("/plain.Service/Other")) is None


def test_the_server_lists_every_method_of_every_service_it_offers(server):
    from edgetl.server.app import reflection_pool

    pool: descriptor_pool.DescriptorPool = reflection_pool()
    listed = set(server.server.method_table.methods)
    services = ["edgetl.v1.InferenceService", "edgetl.v1.ModelService", "edgetl.v1.LabelService", "edgetl.v1.TrainingService",
                "edgetl.v1.AdapterService", "edgetl.v1.ReviewService", "inference.GRPCInferenceService", "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection"]
    for name in services:
        service = pool.FindServiceByName(name)
        for method in service.methods:
            assert f"/{name}/{method.name}" in listed


def test_an_unknown_method_is_unimplemented_and_the_server_goes_on(server, chelsea_rgb):
    from edgetl.api.v1 import image_pb2, inference_pb2
    from tests.conftest import encode

    unknown = server.channel.unary_unary("/edgetl.v1.InferenceService/NoSuchMethod")
    with pytest.raises(grpc.RpcError) as err:
        unknown(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    answer = stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=encode(chelsea_rgb))), timeout=30)
    assert answer.label
