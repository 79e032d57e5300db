"""Limits on the hardened server (tests/e2e/secure.py: one sequence per step, at most one
request waiting, 1 MiB requests): a full queue refuses new requests (REST 503 with
Retry-After, gRPC RESOURCE_EXHAUSTED) and the server goes on serving once it drains;
bodies and messages over the limit are refused (413 / RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import time

import grpc
import httpx
import pytest

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2, generate_pb2_grpc
from protoserve.models.v1 import models_pb2, models_pb2_grpc
from tests.e2e.secure import AUTH, KEYS, MAX_REQUEST_BYTES

pytestmark = pytest.mark.e2e

HEADERS = {"Authorization": f"Bearer {KEYS[0]}"}
LONG = params_pb2.StoppingParams(max_tokens=2000, ignore_eos=True)


@pytest.fixture(scope="module")
def channel(secure_servers):
    with secure_servers.channel() as channel:
        yield channel


@pytest.fixture(scope="module")
def https(secure_servers):
    context = secure_servers.tls_context()
    with httpx.Client(base_url=secure_servers.https_url, verify=context, timeout=60) as client:
        yield client


def _stats(channel) -> models_pb2.RuntimeStats:
    stub = models_pb2_grpc.ModelsServiceStub(channel)
    return stub.GetModel(models_pb2.GetModelRequest(name="demo"), metadata=AUTH, timeout=10).stats


def _wait_for(channel, condition, seconds: float = 30.0) -> models_pb2.RuntimeStats:
    deadline = time.monotonic() + seconds
    while not condition(stats := _stats(channel)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return stats


def _idle(stats) -> bool:
    return (
        stats.num_running == stats.num_waiting == 0
        and stats.kv_blocks_free == stats.kv_blocks_total
    )


def test_full_queue_refuses_then_recovers(channel, https) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(channel)
    long = generate_pb2.GenerateRequest(text="Bread is", stopping=LONG)
    running = stub.GenerateStream(long, metadata=AUTH, timeout=120)
    next(running)  # generating: the one sequence slot is taken
    waiting = stub.GenerateStream(long, metadata=AUTH, timeout=120)
    assert _wait_for(channel, lambda s: s.num_waiting == 1).num_waiting == 1
    try:
        reply = https.post(
            "/v1/completions", json={"prompt": "x", "max_tokens": 2}, headers=HEADERS
        )
        assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
        error = reply.json()["error"]
        assert error["type"] == "ServiceUnavailableError" and error["code"] == 503
        assert "--max-queued-requests" in error["message"]
        chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        assert https.post("/v1/chat/completions", json=chat, headers=HEADERS).status_code == 503
        streamed = https.post(
            "/v1/chat/completions", json={**chat, "stream": True}, headers=HEADERS
        )
        assert streamed.status_code == 503 and streamed.headers["retry-after"] == "1"
        with pytest.raises(grpc.RpcError) as refused:
            stub.Generate(generate_pb2.GenerateRequest(text="x"), metadata=AUTH, timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Not queued work: still answered.
        assert https.post("/tokenize", json={"prompt": "x"}).status_code == 200
    finally:
        running.cancel()
        waiting.cancel()
    assert _idle(_wait_for(channel, _idle))
    reply = https.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}, headers=HEADERS)
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 2


def test_body_over_the_limit_is_413(https) -> None:
    body = {"prompt": "x" * MAX_REQUEST_BYTES, "max_tokens": 2}
    reply = https.post("/v1/completions", json=body, headers=HEADERS)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == 413
    reply = https.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}, headers=HEADERS)
    assert reply.status_code == 200


def test_grpc_message_over_the_limit_is_resource_exhausted(channel) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(channel)
    huge = generate_pb2.GenerateRequest(text="x" * MAX_REQUEST_BYTES)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Generate(huge, metadata=AUTH, timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    small = generate_pb2.GenerateRequest(text="x", stopping=params_pb2.StoppingParams(max_tokens=2))
    assert stub.Generate(small, metadata=AUTH, timeout=30).usage.completion_tokens == 2
