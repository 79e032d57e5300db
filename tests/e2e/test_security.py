"""API keys, HTTPS and mTLS on real processes (tests/e2e/secure.py): every REST route of
the app guarded as vLLM guards it, every gRPC service behind the key, health open, the
realtime handshake refused without the key, a client without a certificate refused by
the gRPC port, and a standalone bridge reaching the service over mTLS."""

from __future__ import annotations

import json

import grpc
import httpx
import openai
import pytest
import websockets
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from websockets.exceptions import InvalidStatus

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2, generate_pb2_grpc
from service.server import ALL_SERVICES
from tests.bridge_routes import WEBSOCKET, bridge_routes, is_guarded
from tests.e2e.secure import AUTH, BRIDGE_KEY, KEYS, bridge_over_mtls

pytestmark = pytest.mark.e2e

HTTP_ROUTES = [r for r in bridge_routes() if r[0] != WEBSOCKET]


@pytest.fixture(scope="module")
def https(secure_servers):
    with httpx.Client(
        base_url=secure_servers.https_url, verify=secure_servers.tls_context(), timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="module")
def channel(secure_servers):
    with secure_servers.channel() as channel:
        yield channel


def test_https_round_trip_with_the_openai_sdk(secure_servers) -> None:
    http_client = httpx.Client(verify=secure_servers.tls_context(), timeout=60)
    base_url = f"{secure_servers.https_url}/v1"
    client = openai.OpenAI(base_url=base_url, api_key=KEYS[1], http_client=http_client)
    reply = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert reply.choices[0].message.content and reply.usage.completion_tokens == 4
    stranger = openai.OpenAI(base_url=base_url, api_key="nope", http_client=http_client)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()


@pytest.mark.parametrize("method,path", HTTP_ROUTES, ids=[f"{m} {p}" for m, p in HTTP_ROUTES])
def test_rest_route_needs_the_key_where_vllm_does(https, method: str, path: str) -> None:
    without = https.request(method, path, json={})
    with_key = https.request(method, path, json={}, headers={"Authorization": f"Bearer {KEYS[0]}"})
    assert with_key.status_code != 401, with_key.text
    if is_guarded(path):
        assert without.status_code == 401 and without.json()["error"]["code"] == 401
    else:
        assert without.status_code != 401, without.text


def test_health_stays_open(https, secure_servers) -> None:
    assert https.get("/health").status_code == 200
    with secure_servers.channel() as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_realtime_refuses_a_handshake_without_the_key(secure_servers) -> None:
    url = secure_servers.https_url.replace("https://", "wss://") + "/v1/realtime"
    context = secure_servers.tls_context()
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, ssl=context):
            pass
    assert refused.value.response.status_code == 401
    headers = {"Authorization": f"Bearer {KEYS[1]}"}
    async with websockets.connect(url, ssl=context, additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        # The StreamTranscribe call it opens carries the bridge's service token: the
        # service answers about the model (none speaks here), not about the key.
        await ws.send(json.dumps({"type": "session.update", "model": "demo"}))
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and "transcription" in error["error"], error


def _first_method(service: str) -> tuple[str, bool, bool]:
    method = descriptor_pool.Default().FindServiceByName(service).methods[0]
    return f"/{service}/{method.name}", method.client_streaming, method.server_streaming


def _status(channel: grpc.Channel, method, metadata) -> grpc.StatusCode:
    path, client_streaming, server_streaming = method
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(client_streaming, server_streaming)]
    request = iter([b""]) if client_streaming else b""
    try:
        reply = kind(path)(request, metadata=metadata, timeout=30)
        if server_streaming:
            list(reply)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_grpc_service_needs_the_key(channel, service: str) -> None:
    method = _first_method(service)
    assert _status(channel, method, ()) == grpc.StatusCode.UNAUTHENTICATED
    assert _status(channel, method, (("authorization", "Bearer x"),)) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert _status(channel, method, AUTH) != grpc.StatusCode.UNAUTHENTICATED


def test_grpc_mtls_round_trip_and_a_client_without_a_certificate(secure_servers) -> None:
    request = generate_pb2.GenerateRequest(
        text="Bread is", stopping=params_pb2.StoppingParams(max_tokens=3, ignore_eos=True)
    )
    with secure_servers.channel() as channel:
        reply = generate_pb2_grpc.GenerateServiceStub(channel).Generate(
            request, metadata=AUTH, timeout=60
        )
    assert reply.usage.completion_tokens == 3
    with secure_servers.channel(with_certificate=False) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            generate_pb2_grpc.GenerateServiceStub(channel).Generate(
                request, metadata=AUTH, timeout=10
            )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(secure_servers.servers.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.fixture(scope="module")
def bridge(secure_servers, tmp_path_factory):
    yield from bridge_over_mtls(secure_servers, tmp_path_factory)


def test_bridge_to_service_over_mtls(bridge, secure_servers) -> None:
    """The standalone bridge: HTTPS with a client certificate, its own key for callers,
    mTLS and a service token (key-two) towards the service."""
    context = secure_servers.tls_context(with_certificate=True)
    with httpx.Client(base_url=bridge.http_url, verify=context, timeout=60) as client:
        headers = {"Authorization": f"Bearer {BRIDGE_KEY}"}
        body = {"model": "demo", "prompt": "Bread is", "max_tokens": 3}
        reply = client.post("/v1/completions", json=body, headers=headers)
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] == 3
        assert client.post("/v1/completions", json=body).status_code == 401
        keyed_for_the_service = {"Authorization": f"Bearer {KEYS[0]}"}
        assert (
            client.post("/v1/completions", json=body, headers=keyed_for_the_service).status_code
            == 401
        )
        reply = client.post("/tokenize", json={"model": "demo", "prompt": "Bread"})
        assert reply.status_code == 200 and reply.json()["count"] > 0  # open path, token
    no_certificate = secure_servers.tls_context()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{bridge.http_url}/health", verify=no_certificate, timeout=10)
