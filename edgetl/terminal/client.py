"""The terminal's way to the server: the public gRPC API, with each person's own credentials.

The terminal never imports the runtime or the adaptation code: every button
is an RPC a script could make with the same role. One channel serves every
session; the person's token travels in each call's metadata, so the
server's roles and audit log name the person, not the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from edgetl.api.v1 import adapt_pb2_grpc, model_pb2_grpc, review_pb2_grpc

#: gRPC status -> HTTP status for the page.
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "FAILED_PRECONDITION": 409, "RESOURCE_EXHAUSTED": 413,
    "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "DEADLINE_EXCEEDED": 504, "UNAVAILABLE": 503, "DATA_LOSS": 500, "INTERNAL": 500,
}


@dataclass(frozen=True)
class ChannelSpec:
    """Where the server is and how to reach it.

    `target` is HOST:PORT or ``unix:PATH``; `local` uses gRPC's local
    credentials (the embedded terminal, over the server's Unix socket);
    `ca`/`cert`/`key` are PEM paths for TLS and mutual TLS.
    """

    target: str
    local: bool = False
    ca: str = ""
    cert: str = ""
    key: str = ""


class ServerClient:
    def __init__(self, spec: ChannelSpec, max_message_bytes: int = 64 * 1024 * 1024):
        self.spec = spec
        options = [("grpc.max_send_message_length", max_message_bytes), ("grpc.max_receive_message_length", max_message_bytes)]
        if spec.local:
            self.channel = grpc.aio.secure_channel(spec.target, grpc.local_channel_credentials(grpc.LocalConnectionType.UDS), options=options)
        elif spec.ca or spec.cert:
            read = lambda p: Path(p).read_bytes() if p else None  # noqa: E731
            credentials = grpc.ssl_channel_credentials(read(spec.ca), read(spec.key), read(spec.cert))
            self.channel = grpc.aio.secure_channel(spec.target, credentials, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(spec.target, options=options)
        self.models = model_pb2_grpc.ModelServiceStub(self.channel)
        self.labels = adapt_pb2_grpc.LabelServiceStub(self.channel)
        self.training = adapt_pb2_grpc.TrainingServiceStub(self.channel)
        self.adapters = adapt_pb2_grpc.AdapterServiceStub(self.channel)
        self.review = review_pb2_grpc.ReviewServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()


def explain(error: grpc.aio.AioRpcError, target: str) -> tuple[int, str, str]:
    """(HTTP status, message for a person, gRPC code name) for a failed call."""
    code = error.code().name
    details = error.details() or code
    if code == "UNAVAILABLE" and "ready" not in details and "waiting" not in details:
        return 503, f"The edgetl server at {target} cannot be reached ({details}). Is it running?", code
    if code == "DEADLINE_EXCEEDED":
        return 504, f"The edgetl server at {target} did not answer in time; try again.", code
    if code == "PERMISSION_DENIED":
        return 403, f"Not permitted: {details}", code
    if code == "UNAUTHENTICATED":
        return 401, f"The server did not accept your sign-in: {details}", code
    return HTTP_STATUS.get(code, 500), details, code
