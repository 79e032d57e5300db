"""The speech server of the e2e tests: `protoserve serve` with the tiny Whisper demo as
`whisper` (beside nothing else), small stream limits, on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Servers, _wait_healthy, free_port

MAX_STREAM_SECONDS = 600  # --max-stream-duration: a test passes it


def serve_speech(
    model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    extra_args: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> Iterator[Servers]:
    http_port, grpc_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp("logs") / "speech.log"
    command = [
        sys.executable, "-m", "service.cli", "serve", f"whisper={model_dir}",
        "--host", "127.0.0.1", "--port", str(http_port),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
        "--max-num-seqs", "16", "--max-stream-duration", str(MAX_STREAM_SECONDS),
        "--log-format", "json", "--shutdown-timeout", "5", *extra_args,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", **(extra_env or {})},
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
