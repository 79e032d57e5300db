"""Extra `protoserve serve` processes for tests that need their own flags or model
directory (the shared `servers` fixture serves the plain demo model): free ports, a log
file, health waited for, SIGTERM at the end with a clean exit checked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.conftest import Servers, _wait_healthy, free_port


@contextmanager
def serve(args: list[str], log_path: Path) -> Iterator[Servers]:
    """`protoserve serve *args` on 127.0.0.1 (args: models and flags)."""
    http_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "service.cli", "serve", *args,
        "--host", "127.0.0.1", "--port", str(http_port),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
        "--max-model-len", "512", "--max-num-seqs", "8",
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
