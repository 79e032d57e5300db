"""Through Envoy (front.yaml): the native API as JSON (unary, SSE streams, errors), native
gRPC, grpc-web, CORS, and the OpenAI API routed to the bridge."""

from __future__ import annotations

import base64
import json
import struct
import subprocess

import grpc
import httpx
import pytest
from envoy_stack import REPO
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

GENERATE = "/protoserve.generate.v1.GenerateService"
BODY = {
    "model": "demo",
    "text": "Bread is",
    "sampling": {"temperature": 0},
    "stopping": {"max_tokens": 8, "ignore_eos": True},
}
REQUEST = pb.GenerateRequest(
    model="demo",
    text="Bread is",
    sampling=params_pb2.SamplingParams(temperature=0),
    stopping=params_pb2.StoppingParams(max_tokens=8, ignore_eos=True),
)


@pytest.fixture(scope="module")
def direct(front) -> pb.GenerateResponse:
    """The reference answer, straight from the service."""
    with grpc.insecure_channel(front.serve.grpc_target) as channel:
        return generate_pb2_grpc.GenerateServiceStub(channel).Generate(REQUEST, timeout=30)


@pytest.fixture(scope="module")
def http(front):
    with httpx.Client(base_url=front.envoy.url, timeout=30) as client:
        yield client


def sse_events(response: httpx.Response) -> list[dict]:
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            events.append(json.loads(line.removeprefix("data: ")))
    return events


def test_unary_generate_as_json(http, direct) -> None:
    reply = http.post("/api/v1/generate", json=BODY, headers={"x-request-id": "json-unary-1"})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["request_id"] == "json-unary-1" and body["model"] == "demo"
    [choice] = body["choices"]
    assert choice["token_ids"] == list(direct.choices[0].token_ids)
    assert choice["text"] == direct.choices[0].text
    assert choice["finish"]["reason"] == "FINISH_REASON_LENGTH"
    assert body["usage"]["completion_tokens"] == 8


def test_streaming_generate_as_sse(http, direct) -> None:
    with http.stream("POST", "/api/v1/generate:stream", json=BODY) as reply:
        assert reply.status_code == 200
        events = sse_events(reply)
    kinds = [next(k for k in ("prompt", "delta", "end") if k in e) for e in events]
    assert kinds[0] == "prompt" and kinds[-1] == "end" and set(kinds[1:-1]) == {"delta"}
    deltas = [e["delta"] for e in events[1:-1]]
    assert "".join(d["text"] for d in deltas) == direct.choices[0].text
    assert [t for d in deltas for t in d["token_ids"]] == list(direct.choices[0].token_ids)
    assert events[-1]["end"]["usage"]["completion_tokens"] == 8


def test_grpc_errors_arrive_as_json_with_http_status(http) -> None:
    reply = http.post("/api/v1/generate", json={**BODY, "model": "nope"})
    assert reply.status_code == 404 and reply.headers["content-type"] == "application/json"
    error = reply.json()
    assert error["code"] == grpc.StatusCode.NOT_FOUND.value[0] and "nope" in error["message"]
    [detail] = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["field_violations"][0]["field"] == "model"

    reply = http.post("/api/v1/generate", json={**BODY, "sampling": {"temperature": -1}})
    assert reply.status_code == 400
    assert reply.json()["details"][0]["field_violations"][0]["field"] == "temperature"

    reply = http.post("/api/v1/generate:stream", json={**BODY, "model": "nope"})
    assert reply.status_code == 404 and reply.json()["code"] == 5

    reply = http.post("/api/v1/embed", json={"model": "demo", "inputs": [{"text": "x"}]})
    assert reply.status_code == 501 and reply.json()["code"] == 12


def test_unknown_api_path_is_a_json_404(http) -> None:
    reply = http.post("/api/v1/nothing-here", json={})
    assert reply.status_code == 404 and reply.json()["code"] == 5


def test_grpc_through_envoy(front, direct) -> None:
    with grpc.insecure_channel(front.envoy.grpc_target) as channel:
        stub = generate_pb2_grpc.GenerateServiceStub(channel)
        reply = stub.Generate(REQUEST, metadata=(("x-request-id", "via-envoy-1"),), timeout=30)
        assert reply.request_id == "via-envoy-1"
        assert list(reply.choices[0].token_ids) == list(direct.choices[0].token_ids)
        events = list(stub.GenerateStream(REQUEST, timeout=30))
        assert [e.WhichOneof("event") for e in events][-1] == "end"
        with pytest.raises(grpc.RpcError) as error:
            stub.Generate(pb.GenerateRequest(model="nope", text="x"), timeout=30)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def grpc_web_frames(payload: bytes) -> list[tuple[int, bytes]]:
    frames, offset = [], 0
    while offset < len(payload):
        flags, size = payload[offset], struct.unpack(">I", payload[offset + 1 : offset + 5])[0]
        frames.append((flags, payload[offset + 5 : offset + 5 + size]))
        offset += 5 + size
    return frames


def test_grpc_web_stream(http, direct) -> None:
    """A browser's grpc-web call, framed by hand: 5-byte prefix + message; the response
    ends with a trailer frame (flag 0x80)."""
    message = REQUEST.SerializeToString()
    frame = b"\x00" + struct.pack(">I", len(message)) + message
    reply = http.post(
        f"{GENERATE}/GenerateStream",
        content=frame,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "origin": "http://app.example",
        },
    )
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "http://app.example"
    frames = grpc_web_frames(reply.content)
    flags, trailer = frames[-1]
    assert flags & 0x80 and b"grpc-status:0" in trailer
    events = [pb.GenerateStreamResponse.FromString(data) for _, data in frames[:-1]]
    text = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    assert text == direct.choices[0].text and events[-1].WhichOneof("event") == "end"


def test_grpc_web_text_unary(http, direct) -> None:
    message = REQUEST.SerializeToString()
    frame = b"\x00" + struct.pack(">I", len(message)) + message
    reply = http.post(
        f"{GENERATE}/Generate",
        content=base64.b64encode(frame),
        headers={
            "content-type": "application/grpc-web-text",
            "accept": "application/grpc-web-text",
            "x-grpc-web": "1",
        },
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/grpc-web-text")
    # Each chunk is base64 on its own (padding mid-body); 4-character groups decode alone.
    text = reply.content
    raw = b"".join(base64.b64decode(text[i : i + 4]) for i in range(0, len(text), 4))
    (_, data), (flags, trailer) = grpc_web_frames(raw)
    assert flags & 0x80 and b"grpc-status:0" in trailer
    assert pb.GenerateResponse.FromString(data).choices[0].text == direct.choices[0].text


def test_cors_preflight(http) -> None:
    reply = http.options(
        f"{GENERATE}/Generate",
        headers={
            "origin": "http://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-grpc-web",
        },
    )
    assert reply.status_code == 200
    assert "x-grpc-web" in reply.headers["access-control-allow-headers"]
    assert "grpc-status" in reply.headers["access-control-expose-headers"]


def test_chat_completions_stream_through_envoy_and_bridge(http) -> None:
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": "Hello!"}],
        "max_tokens": 6,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200
        lines = [line for line in reply.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens"] == 6


def test_bridge_paths(http) -> None:
    assert http.get("/health").status_code == 200
    assert http.get("/version").status_code == 200
    assert http.get("/v1/models").json()["data"][0]["id"] == "demo"
    tokens = http.post("/tokenize", json={"model": "demo", "prompt": "Bread is"}).json()
    assert tokens["count"] > 0
    error = http.post("/v1/completions", json={"model": "nope", "prompt": "x"})
    assert error.status_code == 404 and error.json()["error"]["code"] == 404


def test_curl_examples(front) -> None:
    """examples/curl/native_json.sh runs against this Envoy and shows what it says."""
    script = REPO / "examples" / "curl" / "native_json.sh"
    result = subprocess.run(
        ["bash", str(script), front.envoy.url], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"request_id":"curl-1"' in out and 'data: {"request_id"' in out and '"end":' in out
    for status in ("HTTP 404", "HTTP 400", "HTTP 501"):
        assert status in out
    assert '"model":"all-MiniLM-L6-v2","data":[{"index":0,"embedding":{"shape":[384]' in out
    assert "The model does not support Embeddings API" in out
