"""--max-request-size on the bridge: a body over it is a 413 with the OpenAI error JSON,
whether it declares its length or streams it (chunked), JSON or multipart; a body under
it goes through (no service behind: 503)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from rest_bridge.app import create_app
from rest_bridge.settings import BridgeSettings

LIMIT = 4096


@pytest.fixture(scope="module")
def client():
    settings = BridgeSettings(grpc_target="127.0.0.1:9", max_request_bytes=LIMIT)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _assert_413(reply) -> None:
    assert reply.status_code == 413, reply.text
    error = reply.json()["error"]
    assert error["code"] == 413 and f"{LIMIT} bytes" in error["message"]


def test_declared_length_over_the_limit(client) -> None:
    body = {"prompt": "x" * LIMIT}
    _assert_413(client.post("/v1/completions", json=body))
    _assert_413(client.post("/tokenize", json=body))


def test_streamed_body_over_the_limit(client) -> None:
    def chunks():
        yield b'{"prompt": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    headers = {"content-type": "application/json"}
    reply = client.post("/v1/completions", content=chunks(), headers=headers)
    assert "content-length" not in reply.request.headers
    _assert_413(reply)


def test_multipart_upload_over_the_limit(client) -> None:
    files = {"file": ("a.wav", b"\0" * (2 * LIMIT), "audio/wav")}
    _assert_413(client.post("/v1/audio/transcriptions", files=files, data={"model": "w"}))


def test_under_the_limit_goes_through(client) -> None:
    reply = client.post("/v1/completions", json={"prompt": "x" * (LIMIT // 2)})
    assert reply.status_code == 503  # the (absent) service was asked
    assert client.get("/version").status_code == 200
