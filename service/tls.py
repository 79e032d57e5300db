"""gRPC server TLS (--grpc-ssl-certfile / --grpc-ssl-keyfile) and mTLS
(--grpc-ssl-ca-certs, --grpc-ssl-client-auth): PEM files to server credentials."""

from __future__ import annotations

from pathlib import Path

import grpc

from service.config import TlsOptions


def read_pem(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"{flag} {path}: {exc.strerror or exc}") from None


def server_credentials(tls: TlsOptions) -> grpc.ServerCredentials:
    """Without `ca_certs` no client certificate is asked for; with it a client may present
    one (verified); with `client_auth` one is required."""
    if tls.client_auth and not tls.ca_certs:
        raise SystemExit("--grpc-ssl-client-auth needs --grpc-ssl-ca-certs")
    key = read_pem(tls.keyfile, "--grpc-ssl-keyfile")
    pair = (key, read_pem(tls.certfile, "--grpc-ssl-certfile"))
    roots = read_pem(tls.ca_certs, "--grpc-ssl-ca-certs") if tls.ca_certs else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=roots, require_client_auth=tls.client_auth
    )
