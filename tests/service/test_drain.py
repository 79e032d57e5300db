"""service/drain.py on a real grpc.aio server without a model: calls in flight finish,
new ones are refused with UNAVAILABLE "server is draining", health calls still answer,
and the drain waits for a polling health checker to see NOT_SERVING."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service.drain import DRAINING_MESSAGE, Drain

SLOW = "/test.Slow/Call"
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(float(request.decode()))
    return b"done"


@pytest.fixture
async def server():
    drain = Drain()
    server = grpc.aio.server(interceptors=[drain])
    handlers = {"Call": grpc.unary_unary_rpc_method_handler(_slow)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Slow", handlers)])
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield drain, checker, channel
    await channel.close()
    await server.stop(0)


async def test_drain_finishes_in_flight_and_refuses_new(server) -> None:
    drain, checker, channel = server
    call = channel.unary_unary(SLOW)
    in_flight = asyncio.ensure_future(call(b"0.5"))
    await asyncio.sleep(0.2)
    assert drain.in_flight == 1

    drain.start()
    await checker.set("", NOT_SERVING)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(b"0")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details() == DRAINING_MESSAGE
    stub = health_pb2_grpc.HealthStub(channel)
    assert (await stub.Check(health_pb2.HealthCheckRequest())).status == NOT_SERVING

    assert not await drain.wait_drained(0.1)  # still in flight
    assert await drain.wait_drained(5)
    assert await in_flight == b"done" and drain.in_flight == 0


async def test_drain_waits_for_a_polling_checker(server) -> None:
    drain, checker, channel = server
    stub = health_pb2_grpc.HealthStub(channel)
    for _ in range(2):  # two checks: a poller, like Envoy's active health check
        await stub.Check(health_pb2.HealthCheckRequest())
    drain.start()
    await checker.set("", NOT_SERVING)
    assert drain.untold_checkers() and not await drain.wait_drained(0.3)
    await stub.Check(health_pb2.HealthCheckRequest())  # it sees NOT_SERVING
    assert await drain.wait_drained(2)
    assert not drain.untold_checkers()
