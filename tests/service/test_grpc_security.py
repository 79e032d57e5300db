"""API keys, TLS and mTLS on a real grpc.aio server (Service.start, no model loaded: an
authorised call gets as far as "still loading"), and the bridge's credentials to it."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from rest_bridge.app import create_app
from rest_bridge.grpc_client import GrpcClient
from rest_bridge.settings import BridgeSettings, ChannelTls
from service.config import ServiceConfig, TlsOptions
from service.server import ALL_SERVICES, Service
from tests.certs import Certificates, make_certificates

KEYS = ("key-one", "key-two")


def _methods() -> list[tuple[str, bool, bool]]:
    """(path, client streaming, server streaming) of every RPC of every service."""
    pool = descriptor_pool.Default()
    found = []
    for name in ALL_SERVICES:
        for method in pool.FindServiceByName(name).methods:
            path = f"/{name}/{method.name}"
            found.append((path, method.client_streaming, method.server_streaming))
    return found


METHODS = _methods()


async def _call(channel: grpc.aio.Channel, method, metadata=()) -> grpc.StatusCode:
    """The status of one call with an empty request (no response is expected)."""
    path, client_streaming, server_streaming = method
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(client_streaming, server_streaming)]
    request = iter([b""]) if client_streaming else b""
    call = kind(path)(request, metadata=metadata, timeout=10)
    try:
        if server_streaming:
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
async def keyed():
    """Plaintext, with API keys."""
    config = ServiceConfig(models=(), host="127.0.0.1", grpc_port=0, api_keys=KEYS)
    service = await Service.start(config)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    yield service, channel
    await channel.close()
    await service.stop()


@pytest.mark.parametrize("method", METHODS, ids=[m[0] for m in METHODS])
async def test_every_rpc_needs_a_key(keyed, method) -> None:
    _, channel = keyed
    assert await _call(channel, method) == grpc.StatusCode.UNAUTHENTICATED
    wrong = (("authorization", "Bearer key-three"),)
    assert await _call(channel, method, wrong) == grpc.StatusCode.UNAUTHENTICATED
    basic = (("authorization", "Basic key-one"),)
    assert await _call(channel, method, basic) == grpc.StatusCode.UNAUTHENTICATED
    right = (("authorization", "bearer key-two"),)  # any case of the scheme, any key
    assert await _call(channel, method, right) != grpc.StatusCode.UNAUTHENTICATED


async def test_health_and_reflection_stay_open(keyed) -> None:
    _, channel = keyed
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING  # nothing loaded
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [answer] = [a async for a in stub.ServerReflectionInfo(iter([request]), timeout=10)]
    names = {s.name for s in answer.list_services_response.service}
    assert set(ALL_SERVICES) <= names


async def test_unauthenticated_message_says_what_to_send(keyed) -> None:
    _, channel = keyed
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await channel.unary_unary("/protoserve.models.v1.ModelsService/ListModels")(b"")
    assert "authorization: Bearer" in error.value.details()


# -- TLS and mTLS ------------------------------------------------------------------------
@pytest.fixture(scope="module")
async def mtls(certificates: Certificates):
    tls = TlsOptions(
        str(certificates.server_cert),
        str(certificates.server_key),
        str(certificates.ca),
        client_auth=True,
    )
    config = ServiceConfig(models=(), host="127.0.0.1", grpc_port=0, api_keys=KEYS, tls=tls)
    service = await Service.start(config)
    yield service
    await service.stop()


def _credentials(certificates: Certificates, cert: Path | None, key: Path | None):
    return grpc.ssl_channel_credentials(
        certificates.ca.read_bytes(),
        key.read_bytes() if key else None,
        cert.read_bytes() if cert else None,
    )


async def _health(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=10
    )
    return reply.status


async def test_mtls_round_trip_and_refusals(mtls, certificates: Certificates) -> None:
    target = f"127.0.0.1:{mtls.port}"
    good = _credentials(certificates, certificates.client_cert, certificates.client_key)
    async with grpc.aio.secure_channel(target, good) as channel:
        assert await _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        method = ("/protoserve.models.v1.ModelsService/ListModels", False, False)
        assert await _call(channel, method) == grpc.StatusCode.UNAUTHENTICATED
        key = (("authorization", "Bearer key-one"),)
        assert await _call(channel, method, key) == grpc.StatusCode.UNAVAILABLE  # loading
    refused = [
        _credentials(certificates, None, None),  # no client certificate
        _credentials(certificates, certificates.stranger_cert, certificates.stranger_key),
    ]
    for credentials in refused:
        async with grpc.aio.secure_channel(target, credentials) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await _health(channel)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.insecure_channel(target) as channel:  # plaintext to a TLS port
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await _health(channel)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_tls_without_client_auth(certificates: Certificates) -> None:
    tls = TlsOptions(str(certificates.server_cert), str(certificates.server_key))
    service = await Service.start(ServiceConfig(models=(), host="127.0.0.1", grpc_port=0, tls=tls))
    try:
        credentials = _credentials(certificates, None, None)
        async with grpc.aio.secure_channel(f"127.0.0.1:{service.port}", credentials) as channel:
            assert await _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await service.stop()


# -- the bridge's credentials ------------------------------------------------------------
async def _bridge(settings: BridgeSettings):
    app = create_app(settings)
    app.state.grpc = GrpcClient.from_settings(settings)
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")


@pytest.mark.parametrize("token", [None, "key-two"], ids=["forwarded", "service-token"])
async def test_bridge_credentials_reach_the_service(mtls, certificates, token) -> None:
    """Over mTLS: without its own token the bridge forwards the caller's key (an open
    path without one is refused by the service: 401); with a token every call carries
    it. The answer "still loading" (503) shows the call was let in."""
    tls = ChannelTls(
        str(certificates.ca),
        str(certificates.client_cert),
        str(certificates.client_key),
        server_name="localhost",
    )
    settings = BridgeSettings(
        grpc_target=f"127.0.0.1:{mtls.port}", api_keys=KEYS, grpc_api_key=token, grpc_tls=tls
    )
    app, http = await _bridge(settings)
    try:
        keyed = {"Authorization": "Bearer key-one"}
        for stream in (False, True):
            body = {"prompt": "x", "stream": stream}
            reply = await http.post("/v1/completions", json=body, headers=keyed)
            assert reply.status_code == 503 and "loading" in reply.json()["error"]["message"]
        reply = await http.post("/tokenize", json={"prompt": "x"})  # open on the bridge
        assert reply.status_code == (401 if token is None else 503), reply.text
        assert (await http.get("/health")).status_code == 503  # health: open, not serving
    finally:
        await http.aclose()
        await app.state.grpc.close()
