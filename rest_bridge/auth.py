"""API keys on the REST bridge (--api-key), on vLLM's paths: everything under /v1, /v2,
/inference and /cohere (the /v1/realtime WebSocket handshake included) needs
`Authorization: Bearer <key>` (scheme in any case; keys compared in constant time).
OPTIONS (CORS preflight) and every other path stay open: /health, /ping, /version,
/metrics, /tokenize, /detokenize, /pooling, /classify, /score, /rerank,
/generative_scoring, the docs. A bad or missing key: 401 with the OpenAI error JSON and
`WWW-Authenticate: Bearer` (vLLM's body is `{"error": "Unauthorized"}`); a WebSocket
handshake is refused with HTTP 401.

Every request's Authorization header is kept in CALLER_AUTHORIZATION for the gRPC
channel (rest_bridge/channel.py): the bridge forwards it to the service unless it has a
service token of its own (--grpc-api-key)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from contextvars import ContextVar

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from rest_bridge.errors import APIError

GUARDED_PREFIXES = ("/v1", "/v2", "/inference", "/cohere")
UNAUTHORIZED_MESSAGE = "Invalid or missing API key: send `Authorization: Bearer <key>`."
WS_POLICY_VIOLATION = 1008

# The Authorization header of the request being served (None: it sent none).
CALLER_AUTHORIZATION: ContextVar[str | None] = ContextVar("caller_authorization", default=None)


def is_guarded(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in GUARDED_PREFIXES)


def authorized(header: str | None, keys: Sequence[str]) -> bool:
    """`Bearer <one of keys>`; every key is compared (constant time in the token)."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    given = token.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def unauthorized_response() -> JSONResponse:
    error = APIError(401, UNAUTHORIZED_MESSAGE, "AuthenticationError")
    return JSONResponse(error.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})


class ApiKeyMiddleware:
    """Pure ASGI (so the context variable reaches the endpoint and its streams)."""

    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        self.app = app
        self.keys = tuple(keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization")
        token = CALLER_AUTHORIZATION.set(header)
        try:
            if self.keys and _needs_key(scope) and not authorized(header, self.keys):
                await _refuse(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            CALLER_AUTHORIZATION.reset(token)


def _needs_key(scope: Scope) -> bool:
    if scope.get("method") == "OPTIONS":
        return False
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return is_guarded(path)


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await unauthorized_response()(scope, receive, send)
        return
    websocket = WebSocket(scope, receive, send)
    if "websocket.http.response" in scope.get("extensions", {}):
        await websocket.send_denial_response(unauthorized_response())
    else:  # the server cannot answer a handshake with a status: close it unaccepted
        await websocket.close(WS_POLICY_VIOLATION)
