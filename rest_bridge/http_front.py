"""The HTTP front of the bridge: CORS (vLLM's --allowed-origins & co.), the HTTP metrics,
and X-Request-Id echoed on every response (--enable-request-id-headers): the id the
request ran under (header, else body `request_id`, else a new one; see
convert.request_id), or a new one for responses that never reached a handler."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware

from rest_bridge.metrics import HttpMetrics, HttpMetricsMiddleware
from rest_bridge.settings import HttpSettings

REQUEST_ID_HEADER = "X-Request-Id"


def install(app: FastAPI, settings: HttpSettings) -> None:
    """Innermost first: request ids, then metrics, then CORS outermost (preflights are
    answered before anything else runs)."""
    if settings.enable_request_id_headers:
        app.add_middleware(RequestIdHeaders)
    app.state.http_metrics = HttpMetrics()
    app.add_middleware(HttpMetricsMiddleware, metrics=app.state.http_metrics)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.allowed_origins),
        allow_methods=list(settings.allowed_methods),
        allow_headers=list(settings.allowed_headers),
        allow_credentials=settings.allow_credentials,
    )


class RequestIdHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                request_id = scope.get("state", {}).get("request_id")
                request_id = request_id or Headers(scope=scope).get("x-request-id")
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id or uuid.uuid4().hex
            await send(message)

        await self.app(scope, receive, send_with_id)
