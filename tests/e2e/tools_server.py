"""The tools server of the e2e tests: `protoserve serve` with the demo model as `demo`,
rendered with a Qwen3 chat template (tools, <tool_call>, <think>), auto tool choice
with the hermes parser, the qwen3 reasoning parser and a tool-parser plugin loaded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Servers, _wait_healthy, free_port

DATA = Path(__file__).parent.parent / "data"
TEMPLATE = DATA / "chat_templates" / "qwen3.jinja"
PLUGIN = DATA / "tool_parser_plugin.py"
MAX_MODEL_LEN = 2048  # the Qwen3 tools preamble alone is ~450 demo tokens


def serve_tools(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    http_port, grpc_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp("logs") / "tools.log"
    command = [
        sys.executable, "-m", "service.cli", "serve", f"demo={model_dir}",
        "--chat-template", str(TEMPLATE),
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
        "--tool-parser-plugin", str(PLUGIN), "--reasoning-parser", "qwen3",
        "--host", "127.0.0.1", "--port", str(http_port),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
        "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", "16",
        "--log-format", "json", "--shutdown-timeout", "5",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"},
        )
    servers = Servers(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process, log_path)
    try:
        _wait_healthy(servers)
        yield servers
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, f"protoserve exited with {code} on SIGTERM:\n{servers.log()}"
    assert "Traceback" not in servers.log(), servers.log()
