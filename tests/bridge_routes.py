"""The REST bridge's routes, taken from the app itself (a new route is in the list the
moment it exists), and vLLM's rule for which of them an API key guards (api-surface
§1.1, written here independently of rest_bridge/auth.py)."""

from __future__ import annotations

import re

from starlette.routing import Mount, WebSocketRoute

from rest_bridge.app import create_app
from rest_bridge.settings import BridgeSettings

VLLM_GUARDED = re.compile(r"^/(v1|v2|inference|cohere)(/|$)")
WEBSOCKET = "WEBSOCKET"


def _flatten(routes, prefix: str = "") -> list[tuple[str, object]]:
    """(full path, route) for every route; included routers and mounts flattened."""
    found: list[tuple[str, object]] = []
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's included routers
            found += _flatten(route.original_router.routes, prefix)
        elif isinstance(route, Mount):
            path = prefix + route.path
            found += _flatten(route.routes, path) if route.routes else [(path, route)]
        else:
            found.append((prefix + route.path, route))
    return found


def bridge_routes() -> list[tuple[str, str]]:
    """(method, path) pairs; path parameters filled with "x"; WebSocket routes as
    ("WEBSOCKET", path); a mounted app as ("GET", its path)."""
    pairs = []
    for path, route in _flatten(create_app(BridgeSettings()).routes):
        path = re.sub(r"\{[^}]+\}", "x", path)
        if isinstance(route, WebSocketRoute):
            pairs.append((WEBSOCKET, path))
        elif isinstance(route, Mount):
            pairs.append(("GET", path))
        else:
            pairs += [(m, path) for m in sorted(route.methods) if m != "HEAD"]
    return pairs


def is_guarded(path: str) -> bool:
    return bool(VLLM_GUARDED.match(path))
