"""The hardened server of the e2e security tests: `protoserve serve` with API keys (from
the environment, comma-separated), HTTPS on the bridge, TLS with required client
certificates (mTLS) on the gRPC port, a one-sequence engine with a one-request queue
and a 1 MiB request limit; and a standalone `protoserve bridge` reaching it over mTLS.
Certificates are made at test time (tests/certs.py). Every process is stopped at the end."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.certs import Certificates, make_certificates
from tests.e2e.conftest import Servers, _wait_healthy, free_port

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


def run(
    command: list[str], log_path: Path, env: dict[str, str], url: str, grpc_target: str,
    verify: ssl.SSLContext, exit_codes: tuple[int, ...] = (0,),
) -> Iterator[Servers]:  # fmt: skip
    """Start `command`, wait for `url`/health, yield; SIGTERM at the end (exit 0)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", **env},
        )
    servers = Servers(url, grpc_target, process, log_path)
    try:
        _wait_healthy(servers, verify=verify)
        yield servers
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code in exit_codes, f"{command[3]} exited with {code} on SIGTERM:\n{servers.log()}"
    assert "Traceback" not in servers.log(), servers.log()


def serve_secure(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureServers]:
    certs = make_certificates(tmp_path_factory.mktemp("certs"))
    http_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "service.cli", "serve", str(model_dir),
        "--served-model-name", "demo",
        "--host", "127.0.0.1", "--port", str(http_port),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
        "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", "1",
        "--max-queued-requests", "1", "--max-request-size", "1m",
        "--ssl-certfile", str(certs.server_cert), "--ssl-keyfile", str(certs.server_key),
        "--grpc-ssl-certfile", str(certs.server_cert),
        "--grpc-ssl-keyfile", str(certs.server_key),
        "--grpc-ssl-ca-certs", str(certs.ca), "--grpc-ssl-client-auth",
        "--log-format", "json", "--shutdown-timeout", "5",
    ]  # fmt: skip
    env = {"PROTOSERVE_API_KEY": f"{KEYS[0]}, {KEYS[1]}"}
    log_path = tmp_path_factory.mktemp("logs") / "secure.log"
    url, target = f"https://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
    verify = ssl.create_default_context(cafile=str(certs.ca))
    for servers in run(command, log_path, env, url, target, verify):
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
    yield from run(command, log_path, env, url, secure.servers.grpc_target, verify, codes)
