"""Keepalive (service/server.py): a client pinging every 10 s, the most often the service
promises to accept, keeps a long non-streaming call alive: a 45 s call with no data
flowing survives four pings. The same client against a server with gRPC's classic
5-minute policy (and one strike allowed) is cut off by GOAWAY "too_many_pings" at its
third ping (the control: the test can fail). Both run at once; ~45 s of waiting, no CPU."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from service.server import server_options

CALL_SECONDS = 45  # the strict server refuses the 3rd ping (30 s): a 15 s margin
CLIENT_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
]
STRICT = [
    ("grpc.http2.min_ping_interval_without_data_ms", 300_000),
    ("grpc.http2.max_ping_strikes", 1),
]


async def _slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(CALL_SECONDS)
    return b"done"


async def _long_call(options: list) -> grpc.StatusCode:
    server = grpc.aio.server(options=options)
    handlers = {"Call": grpc.unary_unary_rpc_method_handler(_slow)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Slow", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=CLIENT_OPTIONS) as ch:
            await ch.unary_unary("/t.Slow/Call")(b"", timeout=CALL_SECONDS + 30)
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as error:
        return error.code()
    finally:
        await server.stop(0)


@pytest.mark.timeout(CALL_SECONDS + 60)
async def test_long_call_survives_client_pings_every_10_seconds() -> None:
    ours, strict = await asyncio.gather(_long_call(server_options(1 << 20)), _long_call(STRICT))
    assert ours == grpc.StatusCode.OK
    assert strict == grpc.StatusCode.UNAVAILABLE
