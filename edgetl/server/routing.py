"""Every service's methods in one table that the server looks a call up in.

The generated `add_*Servicer_to_server` functions also register each method
with gRPC's C core ("registered methods", grpcio 1.63 and later). For each
registered method, grpc.aio's server then keeps a request for the next call
pending, and it waits on all of them with `asyncio.wait` before every call.
For edgetl's ~45 methods, that adds and removes ~45 callbacks per call. That
was the largest single piece of Python on the event loop: a third of it
under cProfile. A server with one generic handler has one pending request,
and finds a call's method with one dict lookup. The loop's CPU per Classify
call with the model in went from 529 to 498 µs on one core (BENCHMARKS.md,
"Against the servers a plant could pick instead").

The services are added to a `MethodTable` as if it were the server. The
table is then the server's one generic handler.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc


class MethodTable(grpc.GenericRpcHandler):
    """Collects services' method handlers from generated `add_*_to_server` functions. Is itself a GenericRpcHandler.

    Generated code calls `add_generic_rpc_handlers` with a handler for its
    service, then `add_registered_method_handlers` with the same methods. The
    table answers from the methods it was given. It asks the generic handlers
    only for a method it does not know, so a handler added without its
    methods listed is still reached.
    """

    def __init__(self) -> None:
        self._methods: dict[str, grpc.RpcMethodHandler] = {}
        self._generic: list[grpc.GenericRpcHandler] = []

    # The two calls generated code makes on a server.
    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        for method, handler in handlers.items():
            self._methods[f"/{service}/{method}"] = handler

    @property
    def methods(self) -> list[str]:
        """The full paths ("/package.Service/Method") of the methods listed."""
        return sorted(self._methods)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """The handler of the call's method, or None (the server answers UNIMPLEMENTED)."""
        handler = self._methods.get(handler_call_details.method)
        if handler is not None:
            return handler
        for generic in self._generic:
            handler = generic.service(handler_call_details)
            if handler is not None:
                return handler
        return None
