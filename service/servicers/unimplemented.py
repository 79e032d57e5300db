"""Services of the contract whose capability this server does not have yet. Every RPC
answers UNIMPLEMENTED with a message saying so; nothing pretends."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import symbol_database
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

# Every service of the contract is served now; a new one lands here until it is built.
NOT_YET_SERVED: dict[str, ServiceDescriptor] = {}


def _message(service: str, method: str) -> str:
    return f"{service}.{method} is not implemented by this server yet."


def _unary(service: str, method: str):
    async def behavior(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _message(service, method))

    return behavior


def _streaming(service: str, method: str):
    async def behavior(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _message(service, method))
        yield  # pragma: no cover - makes this an async generator

    return behavior


def _handler(service: str, method: MethodDescriptor) -> grpc.RpcMethodHandler:
    db = symbol_database.Default()
    request_type = db.GetSymbol(method.input_type.full_name)
    response_type = db.GetSymbol(method.output_type.full_name)
    kwargs = {
        "request_deserializer": request_type.FromString,
        "response_serializer": response_type.SerializeToString,
    }
    client_streams, server_streams = method.client_streaming, method.server_streaming
    if client_streams and server_streams:
        return grpc.stream_stream_rpc_method_handler(_streaming(service, method.name), **kwargs)
    if server_streams:
        return grpc.unary_stream_rpc_method_handler(_streaming(service, method.name), **kwargs)
    if client_streams:
        return grpc.stream_unary_rpc_method_handler(_unary(service, method.name), **kwargs)
    return grpc.unary_unary_rpc_method_handler(_unary(service, method.name), **kwargs)


def generic_handlers() -> list[grpc.GenericRpcHandler]:
    return [
        grpc.method_handlers_generic_handler(
            name, {m.name: _handler(name, m) for m in descriptor.methods}
        )
        for name, descriptor in NOT_YET_SERVED.items()
    ]
