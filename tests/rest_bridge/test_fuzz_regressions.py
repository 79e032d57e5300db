"""5xx bugs the schemathesis fuzzer (tests/e2e/test_fuzz_openapi.py) found, each kept as a
regression test; they fail in the bridge, before any gRPC call, so no service is needed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rest_bridge.app import create_app
from rest_bridge.settings import BridgeSettings

JSON_PATHS = ["/v1/completions", "/v1/chat/completions", "/tokenize", "/v1/embeddings"]


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(BridgeSettings(grpc_target="127.0.0.1:9"))) as c:
        yield c


@pytest.mark.parametrize("path", JSON_PATHS)
def test_a_body_that_is_not_utf8_is_a_400(client: TestClient, path: str) -> None:
    # Found: b'\xd8\xd34' -> 500 (UnicodeDecodeError has no `msg`).
    reply = client.post(path, content=b"\xd8\xd34", headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "body"
    assert "not UTF-8" in reply.json()["error"]["message"]


@pytest.mark.parametrize("request_id", ["í:x", "a\nb", "x" * 513])
def test_a_request_id_grpc_metadata_cannot_carry_is_a_400(
    client: TestClient, request_id: str
) -> None:
    # Found: body request_id 'í:...' -> 500 (grpc refused the x-request-id metadata).
    body = {"prompt": "Bread", "max_tokens": 1, "request_id": request_id}
    reply = client.post("/v1/completions", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "request_id"


def test_a_header_request_id_grpc_cannot_carry_is_a_400(client: TestClient) -> None:
    reply = client.post(
        "/v1/completions",
        json={"prompt": "Bread", "max_tokens": 1},
        headers={"X-Request-Id": "é".encode("latin-1")},
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "X-Request-Id"


SCORE = {"queries": "a", "documents": ["b"]}


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/score", {**SCORE, "max_tokens_per_doc": -852}, "max_tokens_per_doc"),
        ("/score", {**SCORE, "max_tokens_per_query": -1}, "max_tokens_per_query"),
        ("/rerank", {"query": "a", "documents": ["b"], "top_n": -3}, "top_n"),
    ],
)
def test_negative_counts_are_a_400_naming_the_field(
    client: TestClient, path: str, body: dict, field: str
) -> None:
    # Found: max_tokens_per_doc=-852 -> 500 (protobuf refused a negative uint32): the
    # Field(ge=0) default lost to Int32's own lower bound.
    reply = client.post(path, json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == f"body.{field}"
