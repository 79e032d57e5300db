"""The hardened server of the e2e security tests: `protoserve serve` with API keys (from
the environment, comma-separated), HTTPS on the bridge, TLS with required client
certificates (mTLS) on the gRPC port, a one-sequence engine with a one-request queue
and a 1 MiB request limit; and a standalone `protoserve bridge` reaching it over mTLS.
Certificates are made at test time (tests/certs.py). Every process is stopped at the end."""

from __future__ import annotations

import signal
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.certs import Certificates, make_certificates
from tests.e2e.launch import Servers, free_port, serving, start_process, stopped_at_exit

KEYS = ("key-one", "key-two")
AUTH = (("authorization", f"Bearer {KEYS[0]}"),)
MAX_MODEL_LEN = 2048
MAX_REQUEST_BYTES = 1 << 20


@dataclass(frozen=True)
class SecureServers:
    servers: Servers
    certs: Certificates

    @property
    def https_url(self) -> str:
        return self.servers.http_url

    def channel(self, with_certificate: bool = True) -> grpc.Channel:
        """A gRPC channel over TLS, with the client certificate (mTLS) unless told not."""
        certs = self.certs
        credentials = grpc.ssl_channel_credentials(
            certs.ca.read_bytes(),
            certs.client_key.read_bytes() if with_certificate else None,
            certs.client_cert.read_bytes() if with_certificate else None,
        )
        return grpc.secure_channel(self.servers.grpc_target, credentials)

    def tls_context(self, with_certificate: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        if with_certificate:
            context.load_cert_chain(str(self.certs.client_cert), str(self.certs.client_key))
        return context


def serve_secure(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureServers]:
    certs = make_certificates(tmp_path_factory.mktemp("certs"))
    env = {"PROTOSERVE_API_KEY": f"{KEYS[0]}, {KEYS[1]}"}
    log_path = tmp_path_factory.mktemp("logs") / "secure.log"
    verify = ssl.create_default_context(cafile=str(certs.ca))
    with serving(
        [str(model_dir)], log_path,
        "--served-model-name", "demo",
        "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", "1",
        "--max-queued-requests", "1", "--max-request-size", "1m",
        "--ssl-certfile", str(certs.server_cert), "--ssl-keyfile", str(certs.server_key),
        "--grpc-ssl-certfile", str(certs.server_cert),
        "--grpc-ssl-keyfile", str(certs.server_key),
        "--grpc-ssl-ca-certs", str(certs.ca), "--grpc-ssl-client-auth",
        env=env, scheme="https", verify=verify,
    ) as servers:  # fmt: skip
        yield SecureServers(servers, certs)


BRIDGE_KEY = "bridge-key"


def bridge_over_mtls(
    secure: SecureServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """`protoserve bridge` alone: HTTPS requiring a client certificate (--ssl-cert-reqs
    2), its own API key, and mTLS + a service token to the secure service."""
    certs, port = secure.certs, free_port()
    command = [
        sys.executable, "-m", "service.cli", "bridge",
        "--grpc-target", secure.servers.grpc_target,
        "--grpc-target-ssl-ca-certs", str(certs.ca),
        "--grpc-target-ssl-certfile", str(certs.client_cert),
        "--grpc-target-ssl-keyfile", str(certs.client_key),
        "--host", "127.0.0.1", "--port", str(port),
        "--ssl-certfile", str(certs.server_cert), "--ssl-keyfile", str(certs.server_key),
        "--ssl-ca-certs", str(certs.ca), "--ssl-cert-reqs", "2",
        "--log-format", "json",
    ]  # fmt: skip
    env = {"PROTOSERVE_API_KEY": BRIDGE_KEY, "PROTOSERVE_GRPC_API_KEY": KEYS[1]}
    log_path = tmp_path_factory.mktemp("logs") / "bridge.log"
    verify = secure.tls_context(with_certificate=True)
    url = f"https://127.0.0.1:{port}"
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly, so the bare
    # bridge ends "killed by SIGTERM" (graceful shutdown is not this module's subject).
    codes = (0, -signal.SIGTERM)
    bridge = start_process(command, log_path, url, secure.servers.grpc_target, env, verify)
    with stopped_at_exit(bridge, codes) as running:
        yield running
