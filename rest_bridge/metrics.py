"""GET /metrics: the service's Prometheus metrics (MetricsService.GetMetrics: vLLM's
vllm:* names, process metrics) followed by the bridge's own HTTP metrics, as vLLM's
instrumentator names them (http_requests_total{handler,method,status},
http_request_duration_seconds{handler,method}); /metrics, /health, /ping, /version and
/load are not counted. Paths that match no route count as handler "none", so a scanner
cannot grow the label set."""

from __future__ import annotations

import time
from typing import Any

import grpc
import prometheus_client
from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from protoserve.metrics.v1 import metrics_pb2
from rest_bridge.grpc_client import GrpcClient

router = APIRouter()

EXCLUDED_HANDLERS = frozenset({"/metrics", "/health", "/ping", "/version", "/load"})
DURATION_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SERVICE_TIMEOUT_S = 5.0


class HttpMetrics:
    """The bridge's registry (one per app)."""

    def __init__(self) -> None:
        prometheus_client.disable_created_metrics()  # no `_created` twin per counter
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests, by handler, method and status class.",
            ["handler", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Request to last response byte, by handler and method.",
            ["handler", "method"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

    def observe(self, handler: str, method: str, status: int, seconds: float) -> None:
        if handler in EXCLUDED_HANDLERS:
            return
        self.requests.labels(handler, method, f"{status // 100}xx").inc()
        self.duration.labels(handler, method).observe(seconds)

    def render(self) -> str:
        return generate_latest(self.registry).decode()


class HttpMetricsMiddleware:
    """Pure ASGI, so a streamed response counts until its last byte."""

    def __init__(self, app: Any, metrics: HttpMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            handler = getattr(route, "path", None) or "none"
            self.metrics.observe(handler, scope["method"], status, time.perf_counter() - started)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    client: GrpcClient = request.app.state.grpc
    try:
        reply = await client.metrics.GetMetrics(
            metrics_pb2.GetMetricsRequest(), timeout=SERVICE_TIMEOUT_S
        )
        service = reply.text
    except grpc.aio.AioRpcError as exc:
        service = f"# service metrics unavailable: {exc.code().name}\n"
    own: HttpMetrics = request.app.state.http_metrics
    return Response(service + own.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
