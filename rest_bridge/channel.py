"""The bridge's gRPC channel to the service: plaintext or TLS (optionally with a client
certificate for mTLS), keepalive so long non-streaming calls survive idle proxies, the
message limit (--max-request-size), and the credentials every call carries: the bridge's
own service token (--grpc-api-key) when it has one, else the caller's Authorization
header as it came (rest_bridge/auth.py keeps it per request)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from rest_bridge.auth import CALLER_AUTHORIZATION
from rest_bridge.settings import ChannelTls

AUTHORIZATION_KEY = "authorization"

# Pings every 30 s, also while a call is open and no data flows (the service accepts
# pings every 10 s or more: service/server.py).
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


def channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        *KEEPALIVE_OPTIONS,
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def open_channel(
    target: str,
    *,
    tls: ChannelTls | None = None,
    token: str | None = None,
    max_message_bytes: int = 64 << 20,
) -> grpc.aio.Channel:
    options = channel_options(max_message_bytes)
    interceptors = credentials_interceptors(token)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(
        target, channel_credentials(tls), options=options, interceptors=interceptors
    )


def channel_credentials(tls: ChannelTls) -> grpc.ChannelCredentials:
    if bool(tls.certfile) != bool(tls.keyfile):
        raise SystemExit("mTLS to the service needs both --grpc-target-ssl-certfile and -keyfile")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_certs),
        private_key=_read(tls.keyfile),
        certificate_chain=_read(tls.certfile),
    )


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def credentials_interceptors(token: str | None) -> list[grpc.aio.ClientInterceptor]:
    """One interceptor per call kind (a channel files an interceptor under the first
    kind it implements only)."""
    own = f"Bearer {token}" if token else None
    kinds = (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)
    return [kind(own) for kind in kinds]


class _Credentials:
    """Adds `authorization` metadata to every call (none if there is nothing to send)."""

    def __init__(self, own: str | None) -> None:
        self._own = own

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        authorization = self._own or CALLER_AUTHORIZATION.get()
        if not authorization:
            return details
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != AUTHORIZATION_KEY]
        metadata.append((AUTHORIZATION_KEY, authorization))
        return details._replace(metadata=grpc.aio.Metadata(*metadata))


class _UnaryUnary(_Credentials, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


class _UnaryStream(_Credentials, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


class _StreamUnary(_Credentials, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return await continuation(self._details(client_call_details), request_iterator)


class _StreamStream(_Credentials, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return await continuation(self._details(client_call_details), request_iterator)
