"""The bridge's channel puts credentials on calls of every kind: its own service token,
else the caller's Authorization header (rest_bridge/auth.CALLER_AUTHORIZATION), else
nothing. A plain grpc.aio server echoes what it received."""

from __future__ import annotations

import grpc
import pytest

from rest_bridge.auth import CALLER_AUTHORIZATION
from rest_bridge.channel import open_channel


def _seen(context: grpc.aio.ServicerContext) -> bytes:
    found = dict(context.invocation_metadata() or ()).get("authorization", "")
    return found.encode()


async def _unary(request, context):
    return _seen(context)


async def _server_stream(request, context):
    yield _seen(context)


async def _client_stream(requests, context):
    async for _ in requests:
        pass
    return _seen(context)


async def _bidi(requests, context):
    async for _ in requests:
        pass
    yield _seen(context)


@pytest.fixture(scope="module")
async def target():
    server = grpc.aio.server()
    handlers = {
        "UU": grpc.unary_unary_rpc_method_handler(_unary),
        "US": grpc.unary_stream_rpc_method_handler(_server_stream),
        "SU": grpc.stream_unary_rpc_method_handler(_client_stream),
        "SS": grpc.stream_stream_rpc_method_handler(_bidi),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Echo", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


async def _all_kinds(channel: grpc.aio.Channel) -> list[bytes]:
    metadata = (("x-request-id", "r"),)
    seen = [await channel.unary_unary("/t.Echo/UU")(b"", metadata=metadata)]
    seen += [m async for m in channel.unary_stream("/t.Echo/US")(b"", metadata=metadata)]
    seen.append(await channel.stream_unary("/t.Echo/SU")(iter([b""]), metadata=metadata))
    seen += [m async for m in channel.stream_stream("/t.Echo/SS")(iter([b""]))]
    return seen


async def test_service_token_on_every_kind_of_call(target) -> None:
    async with open_channel(target, token="svc") as channel:
        caller = CALLER_AUTHORIZATION.set("Bearer caller")  # the token wins
        try:
            assert await _all_kinds(channel) == [b"Bearer svc"] * 4
        finally:
            CALLER_AUTHORIZATION.reset(caller)


async def test_caller_credentials_forwarded_without_a_token(target) -> None:
    async with open_channel(target) as channel:
        assert await _all_kinds(channel) == [b""] * 4
        caller = CALLER_AUTHORIZATION.set("Bearer caller")
        try:
            assert await _all_kinds(channel) == [b"Bearer caller"] * 4
        finally:
            CALLER_AUTHORIZATION.reset(caller)
