"""One interceptor turns exceptions into gRPC status codes (DESIGN.md decision 7).

EdgetlError subclasses carry their status; anything else is a bug, logged
with its traceback and answered INTERNAL with an id to find it in the log,
never with the traceback itself.
"""

from __future__ import annotations

import logging
import uuid

import grpc

from edgetl import metrics
from edgetl.errors import EdgetlError, InvalidInput
from edgetl.server.security import CURRENT_CALLER, READ_ONLY, required_role

log = logging.getLogger(__name__)


class _Malformed:
    """Stands in for a request whose bytes did not parse, so the call gets
    INVALID_ARGUMENT instead of grpc's UNKNOWN with a Python class name."""

    def __init__(self, error: Exception):
        self.error = InvalidInput(
            f"malformed request: {error}; is the client built from the edgetl.v1 protos?"
        )


def _safe(deserializer):
    if deserializer is None:
        return None

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's
            return _Malformed(exc)

    return parse


def _wire(serializer):
    """The response serializer, passing through bytes a servicer serialized itself (convert.prediction_to_wire)."""
    if serializer is None:
        return None

    def serialize(response) -> bytes:
        return response if isinstance(response, bytes) else serializer(response)

    return serialize


async def _checked(request_iterator):
    async for request in request_iterator:
        if isinstance(request, _Malformed):
            raise request.error
        yield request


#: Outcomes recorded for read-only calls.
_REFUSALS = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a caller sees for `exc`."""
    if isinstance(exc, EdgetlError):
        return getattr(grpc.StatusCode, exc.code), str(exc)
    incident = uuid.uuid4().hex[:8]
    log.error("internal error %s", incident, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (incident {incident}); see the server log"


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Maps exceptions to statuses, and is the one place each call is authorised and audited.

    Args:
        authenticator: decides who may call what (edgetl.server.security);
            None lets every call through.
        audit: where operator and admin actions are recorded; None records nothing.
    """

    def __init__(self, authenticator=None, audit=None):
        self.authenticator = authenticator
        self.audit = audit
        # method -> (the service's handler, our wrapper of it). A method's
        # handler is the same object on every call, so it is wrapped once,
        # not per call (a Classify call is a few hundred microseconds of Python).
        self._wrapped: dict[str, tuple[object, object]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler):
        # Classify calls are not actions and health/reflection are probes:
        # only operator and admin calls are audited. Reads change nothing (and
        # the terminal polls them), so they are recorded only when refused.
        # Decided once per method, here.
        audited = self.audit is not None and required_role(method) not in (None, "inference")
        if audited and method in READ_ONLY:
            audited = _REFUSALS
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, audited, handler.unary_unary), _safe(handler.request_deserializer), _wire(handler.response_serializer)
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, audited, handler.stream_stream, streaming_request=True),
                _safe(handler.request_deserializer),
                _wire(handler.response_serializer),
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, audited, handler.unary_stream), _safe(handler.request_deserializer), _wire(handler.response_serializer)
            )
        return handler  # stream_unary: none of ours

    def _authorize(self, method: str, context):
        if self.authenticator is None:
            return None
        caller = self.authenticator.authorize(method, context)
        CURRENT_CALLER.set(caller)  # this call's task only: each RPC runs in a task of its own
        return caller

    def _record(self, method: str, caller, request, code: str, message: str = "") -> None:
        who, role = (caller.name, caller.role) if caller else ("unknown", "")
        self.audit.record(who, role, method.rsplit("/", 1)[-1], None if isinstance(request, _Malformed) else request, code, message)

    def _wrap_unary(self, method, audited, behavior):
        async def wrapped(request, context: grpc.aio.ServicerContext):
            caller = None
            try:
                caller = self._authorize(method, context)
                if isinstance(request, _Malformed):
                    raise request.error
                response = await behavior(request, context)
                if audited is True:
                    self._record(method, caller, request, "OK")
                metrics.rpc_done(method, "OK")
                return response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped, never leaked
                code, message = status_for(exc)
                if audited is True or (audited and code.name in audited):
                    self._record(method, caller or getattr(exc, "caller", None), request, code.name, message)
                metrics.rpc_done(method, code.name)
                await context.abort(code, message)

        return wrapped

    def _wrap_stream(self, method, audited, behavior, streaming_request: bool = False):
        async def wrapped(request_or_iterator, context: grpc.aio.ServicerContext):
            caller = None
            try:
                caller = self._authorize(method, context)
                if streaming_request:
                    request_or_iterator = _checked(request_or_iterator)
                elif isinstance(request_or_iterator, _Malformed):
                    raise request_or_iterator.error
                async for response in behavior(request_or_iterator, context):
                    yield response
                metrics.rpc_done(method, "OK")
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001
                code, message = status_for(exc)
                if (audited is True or (audited and code.name in audited)) and not streaming_request:
                    self._record(method, caller or getattr(exc, "caller", None), request_or_iterator, code.name, message)
                metrics.rpc_done(method, code.name)
                await context.abort(code, message)

        return wrapped
