"""Draining: once a stop begins, new RPCs are refused with UNAVAILABLE "server is
draining" (Envoy retries them on another replica; the bridge answers 503) while the
calls already in flight run to the end. Health and reflection calls are exempt.

The server may stop once nothing is in flight and every client that was polling the
health service (Envoy's active checks, kubelet's gRPC probes: a peer address answered
SERVING twice in the last seconds) has been answered NOT_SERVING, so load balancers stop
sending work before the port closes. A stop that came sooner would meet requests
already on their way (refused by gRPC's shutdown with CANCELLED, which nobody retries)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from service.errors import STATUS_DETAILS_KEY, Unavailable, status_details

DRAINING_MESSAGE = "server is draining"
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# A peer answered SERVING twice this recently before the drain is a load
# balancer that must see NOT_SERVING; it gets TOLD_MARGIN_S to act on the answer; the
# whole wait for such peers is capped (a balancer that went away does not hold the drain).
CHECKER_MEMORY_S = 10.0
TOLD_MARGIN_S = 0.2
CHECKER_WAIT_S = 5.0


class Drain(grpc.aio.ServerInterceptor):
    """Counts the calls in flight and the health checkers; refuses new calls once
    draining has started."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self._started = 0.0
        self._checks: dict[str, tuple[float, float]] = {}  # peer -> last two Health/Checks
        self._told: dict[str, float] = {}  # peer host -> first Check since the drain

    def start(self) -> None:
        self.draining, self._started = True, time.monotonic()

    async def wait_drained(self, timeout: float, hurry: asyncio.Event | None = None) -> bool:
        """True once drained (see the module doc); False after `timeout` or on `hurry`."""
        deadline = time.monotonic() + timeout
        while not self._drained():
            if time.monotonic() >= deadline or (hurry is not None and hurry.is_set()):
                return False
            await asyncio.sleep(0.05)
        return True

    def _drained(self) -> bool:
        return self.in_flight == 0 and not self.untold_checkers()

    def untold_checkers(self) -> set[str]:
        now = time.monotonic()
        if now - self._started >= CHECKER_WAIT_S:
            return set()
        since = self._started - CHECKER_MEMORY_S
        pollers = {h for h, (previous, last) in self._checks.items() if previous >= since}
        return {h for h in pollers if now - self._told.get(h, now) < TOLD_MARGIN_S}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(EXEMPT_PREFIXES):
            if handler is not None and method == HEALTH_CHECK:
                return handler._replace(unary_unary=self._observe(handler.unary_unary))
            return handler
        if handler.unary_unary:
            return handler._replace(unary_unary=self._wrap_unary(handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=self._wrap_unary(handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=self._wrap_stream(handler.unary_stream))
        return handler._replace(stream_stream=self._wrap_stream(handler.stream_stream))

    def _observe(self, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            reply = await behavior(request, context)
            host, now = _peer_host(context.peer()), time.monotonic()
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                self._checks[host] = (self._checks.get(host, (0.0, 0.0))[1], now)
            elif self.draining:
                self._told.setdefault(host, now)
            return reply

        return handler

    def _wrap_unary(self, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._admit(context)
            try:
                return await behavior(request, context)
            finally:
                self.in_flight -= 1

        return handler

    def _wrap_stream(self, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., Any]:
        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._admit(context)
            try:
                async for response in behavior(request, context):
                    yield response
            finally:
                self.in_flight -= 1

        return handler

    async def _admit(self, context: grpc.aio.ServicerContext) -> None:
        if self.draining:
            error = Unavailable(DRAINING_MESSAGE)
            await context.abort(
                error.code,
                error.message,
                trailing_metadata=((STATUS_DETAILS_KEY, status_details(error)),),
            )
        self.in_flight += 1


def _peer_host(peer: str) -> str:
    """'ipv4:10.0.0.7:51234' -> 'ipv4:10.0.0.7' (kubelet opens a connection per probe)."""
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer
