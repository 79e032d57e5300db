"""API keys on the gRPC service (--api-key): every RPC but grpc.health.v1 and reflection
needs `authorization: Bearer <key>` metadata, else UNAUTHENTICATED. The scheme is
case-insensitive; keys compare in constant time (hmac.compare_digest, every key tried)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc

from service.drain import EXEMPT_PREFIXES

AUTHORIZATION_KEY = "authorization"
UNAUTHENTICATED_MESSAGE = "Invalid or missing API key: send `authorization: Bearer <key>`."
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def bearer_token(header: str) -> str | None:
    """'Bearer KEY' (any case of the scheme) -> KEY; anything else -> None."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def key_matches(token: str, keys: Sequence[str]) -> bool:
    """Constant time in the token's content: every key is compared."""
    given = token.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def authorized(metadata: Iterable[tuple[str, Any]] | None, keys: Sequence[str]) -> bool:
    for key, value in metadata or ():
        if key == AUTHORIZATION_KEY and isinstance(value, str):
            token = bearer_token(value)
            if token is not None and key_matches(token, keys):
                return True
    return False


async def _deny(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """The outermost interceptor: a call without a valid key never reaches a servicer
    (nor counts as in flight for the drain)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("ApiKeyInterceptor needs at least one key")
        self._keys = tuple(keys)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(EXEMPT_PREFIXES):
            return handler
        if authorized(handler_call_details.invocation_metadata, self._keys):
            return handler
        kind = next(k for k in _KINDS if getattr(handler, k) is not None)
        return handler._replace(**{kind: _deny})
