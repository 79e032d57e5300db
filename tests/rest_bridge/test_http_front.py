"""rest_bridge/http_front.py and the OpenAPI bodies, in process (no service needed):
CORS as vLLM's flags configure it, --root-path, X-Request-Id on every response, the HTTP
metrics' handler labels, and request bodies documented in /openapi.json."""

from __future__ import annotations

from fastapi.testclient import TestClient

from rest_bridge.app import create_app
from rest_bridge.settings import BridgeSettings, HttpSettings

ORIGIN = "https://app.example"


def client(root_path: str = "", **http) -> TestClient:
    settings = BridgeSettings(grpc_target="127.0.0.1:9", http=HttpSettings(**http))
    return TestClient(create_app(settings), root_path=root_path)  # uvicorn's root_path


def test_cors_answers_preflights_for_allowed_origins_only() -> None:
    with client(allowed_origins=(ORIGIN,), allow_credentials=True) as c:
        preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        allowed = c.options("/v1/chat/completions", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert allowed.headers["access-control-allow-credentials"] == "true"
        other = c.options(
            "/v1/chat/completions", headers={**preflight, "Origin": "https://x.example"}
        )
        assert "access-control-allow-origin" not in other.headers
        assert (
            c.get("/version", headers={"Origin": ORIGIN}).headers["access-control-allow-origin"]
            == ORIGIN
        )


def test_no_cors_headers_by_default() -> None:
    with client() as c:
        reply = c.get("/version", headers={"Origin": ORIGIN})
        assert "access-control-allow-origin" not in reply.headers


def test_request_id_header_is_echoed_or_made_up() -> None:
    with client(enable_request_id_headers=True) as c:
        assert c.get("/version", headers={"X-Request-Id": "abc"}).headers["x-request-id"] == "abc"
        made_up = c.get("/version").headers["x-request-id"]
        assert len(made_up) == 32
        assert c.get("/no/such/path").headers["x-request-id"]  # 404s too
    with client() as c:
        assert "x-request-id" not in c.get("/version", headers={"X-Request-Id": "abc"}).headers


def test_root_path_prefix_is_served_and_documented() -> None:
    with client(root_path="/llm") as c:
        # Behind a proxy that strips the prefix: the app sees /version under root /llm.
        assert c.get("/version").status_code == 200
        assert c.get("/openapi.json").json()["servers"] == [{"url": "/llm"}]


def test_http_metrics_label_unknown_paths_none() -> None:
    with client() as c:
        c.get("/version")
        c.get("/random/scanner/path-1")
        c.get("/random/scanner/path-2")
        text = c.get("/metrics").text
    assert 'http_requests_total{handler="none",method="GET",status="4xx"} 2.0' in text
    assert 'handler="/version"' not in text  # operational paths are not counted
    assert "service metrics unavailable" in text  # nothing listens on the gRPC target


def test_openapi_documents_request_bodies() -> None:
    document = create_app(BridgeSettings()).openapi()
    chat = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    schema = chat["content"]["application/json"]["schema"]
    assert "messages" in schema["required"]
    ref = schema["properties"]["messages"]["items"]["$ref"]
    assert ref.rsplit("/", 1)[1] in document["components"]["schemas"]
    form = document["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]
    assert form["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
