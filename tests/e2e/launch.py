"""Real `protoserve` processes for the e2e tests: free loopback ports, a log file, health
waited for; stopped with SIGTERM at the end (killed after a timeout), the exit code and
the absence of tracebacks checked. The shared fixtures (conftest.py) and every module that
needs a server with its own flags (speech, tools, security, generation config, shutdown)
start theirs here."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_SECONDS = 180
ENV = {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
Verify = ssl.SSLContext | str | bool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Servers:
    http_url: str
    grpc_target: str
    process: subprocess.Popen
    log_path: Path

    @property
    def openai_base_url(self) -> str:
        return f"{self.http_url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_healthy(servers: Servers, verify: Verify = True) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if servers.process.poll() is not None:
            raise RuntimeError(f"protoserve exited early:\n{servers.log()}")
        try:
            reply = httpx.get(f"{servers.http_url}/health", timeout=2, verify=verify)
            if reply.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"protoserve not healthy after {STARTUP_SECONDS}s:\n{servers.log()}")


def start_process(
    command: list[str], log_path: Path, http_url: str, grpc_target: str,
    env: dict[str, str] | None = None, verify: Verify = True,
) -> Servers:  # fmt: skip
    """Run `command` (a protoserve server), once `http_url`/health answers 200."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **ENV, **(env or {})},
        )  # fmt: skip
    servers = Servers(http_url, grpc_target, process, log_path)
    try:
        wait_healthy(servers, verify)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return servers


def start_serve(
    models: list[str], log_path: Path, *flags: str, env: dict[str, str] | None = None,
    scheme: str = "http", verify: Verify = True,
) -> Servers:  # fmt: skip
    """`protoserve serve MODELS... FLAGS` on free loopback ports, once healthy (the
    caller stops it: `stop_serve`)."""
    http_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "service.cli", "serve", *models,
        "--host", "127.0.0.1", "--port", str(http_port),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
        "--log-format", "json", *flags,
    ]  # fmt: skip
    url, target = f"{scheme}://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
    return start_process(command, log_path, url, target, env, verify)


def stop_serve(servers: Servers, timeout: float = 30) -> int:
    """SIGTERM (unless it exited already) and the exit code; killed after `timeout`."""
    if servers.process.poll() is None:
        servers.process.send_signal(signal.SIGTERM)
    try:
        return servers.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        servers.process.kill()
        servers.process.wait()
        raise


@contextmanager
def stopped_at_exit(
    servers: Servers, exit_codes: tuple[int, ...] = (0,), check_tracebacks: bool = True
) -> Iterator[Servers]:
    """Yield `servers`; at the end stop it and check a clean exit (and no tracebacks)."""
    try:
        yield servers
    finally:
        code = stop_serve(servers)
    assert code in exit_codes, f"exited with {code} on SIGTERM:\n{servers.log()}"
    if check_tracebacks:
        assert "Traceback" not in servers.log(), servers.log()


@contextmanager
def serving(
    models: list[str], log_path: Path, *flags: str, env: dict[str, str] | None = None,
    scheme: str = "http", verify: Verify = True,
) -> Iterator[Servers]:  # fmt: skip
    """`protoserve serve MODELS... --shutdown-timeout 5 FLAGS` for the block."""
    servers = start_serve(
        models, log_path, "--shutdown-timeout", "5", *flags, env=env, scheme=scheme, verify=verify
    )
    with stopped_at_exit(servers) as running:
        yield running
