"""The bridge's API keys, route by route: every route of the app (taken from the app
itself, so a new one cannot escape) is guarded exactly when vLLM guards its path (under
/v1, /v2, /inference, /cohere; api-surface §1.1), the /v1/realtime handshake included.
No service behind the bridge: a call let through fails with 503, never 401."""

from __future__ import annotations

import httpx
import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse

from rest_bridge.app import create_app
from rest_bridge.grpc_client import GrpcClient
from rest_bridge.settings import BridgeSettings
from tests.bridge_routes import WEBSOCKET, bridge_routes, is_guarded

KEYS = ("key-one", "key-two")
NOWHERE = "127.0.0.1:9"  # nothing listens: calls fail at once (UNAVAILABLE -> 503)
ROUTES = bridge_routes()
HTTP_ROUTES = [r for r in ROUTES if r[0] != WEBSOCKET]


@pytest.fixture(scope="module")
def client():
    settings = BridgeSettings(grpc_target=NOWHERE, api_keys=KEYS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_the_route_list_is_the_apps() -> None:
    assert ("POST", "/v1/chat/completions") in ROUTES and ("GET", "/health") in ROUTES
    assert ("WEBSOCKET", "/v1/realtime") in ROUTES and len(HTTP_ROUTES) > 20


@pytest.mark.parametrize("method,path", HTTP_ROUTES, ids=[f"{m} {p}" for m, p in HTTP_ROUTES])
def test_route_guarded_as_vllm_guards_it(client, method: str, path: str) -> None:
    guarded = is_guarded(path)
    reply = client.request(method, path, json={})
    if not guarded:
        assert reply.status_code != 401, reply.text
        return
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    error = reply.json()["error"]
    assert error["code"] == 401 and error["type"] == "AuthenticationError"
    for bad in ("Bearer key-three", "key-one", "Basic key-one", "Bearer "):
        refused = client.request(method, path, json={}, headers={"Authorization": bad})
        assert refused.status_code == 401
    right = client.request(method, path, json={}, headers={"Authorization": "bearer key-two"})
    assert right.status_code != 401, right.text
    assert client.options(path).status_code != 401  # CORS preflight is never guarded


def test_realtime_handshake_needs_the_key(client) -> None:
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect("/v1/realtime"):
            pass
    assert denied.value.status_code == 401
    headers = {"Authorization": "Bearer key-one"}
    with client.websocket_connect("/v1/realtime", headers=headers) as ws:
        assert ws.receive_json()["type"] == "session.created"


def test_without_keys_nothing_is_guarded() -> None:
    app = create_app(BridgeSettings(grpc_target=NOWHERE))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/v1/models").status_code == 503
        with client.websocket_connect("/v1/realtime") as ws:
            assert ws.receive_json()["type"] == "session.created"


async def test_root_path_prefix_is_guarded_too() -> None:
    """Behind a path-routing proxy (ASGI root_path) the path is judged without it."""
    app = create_app(BridgeSettings(grpc_target=NOWHERE, api_keys=KEYS))
    app.state.grpc = GrpcClient.connect(NOWHERE)
    transport = httpx.ASGITransport(app=app, root_path="/llm")
    async with httpx.AsyncClient(transport=transport, base_url="http://b") as http:
        assert (await http.get("/llm/v1/models")).status_code == 401
        assert (await http.get("/llm/version")).status_code == 200
    await app.state.grpc.close()
