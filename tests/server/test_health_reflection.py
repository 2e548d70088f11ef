"""Standard gRPC health checking and reflection, as grpcurl and Kubernetes probes use them."""

from __future__ import annotations

from grpc_health.v1 import health_pb2, health_pb2_grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def test_health_is_serving_for_the_server_and_each_service(server):
    health = health_pb2_grpc.HealthStub(server.channel)
    for service in ("", "edgetl.v1.InferenceService", "edgetl.v1.ModelService"):
        r = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(server):
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    (response,) = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    names = {s.name for s in response.list_services_response.service}
    assert {"edgetl.v1.InferenceService", "edgetl.v1.ModelService", "inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize("symbol", ["inference.GRPCInferenceService", "edgetl.v1.InferenceService"])
def test_reflection_describes_both_apis(server, symbol):
    """What grpcurl asks before it can call a method: the file that defines the service, with its dependencies."""
    from google.protobuf import descriptor_pb2

    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
    (response,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in response.file_descriptor_response.file_descriptor_proto]
    services = {f"{f.package}.{s.name}": [m.name for m in s.method] for f in files for s in f.service}
    assert symbol in services and ("ModelInfer" in services[symbol] or "Classify" in services[symbol])


def test_stop_turns_health_to_not_serving_first(server_factory):
    import asyncio

    server = server_factory()
    health = health_pb2_grpc.HealthStub(server.channel)
    asyncio.run_coroutine_threadsafe(server.server._health.enter_graceful_shutdown(), server.loop).result(10)
    r = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert r.status == health_pb2.HealthCheckResponse.NOT_SERVING
