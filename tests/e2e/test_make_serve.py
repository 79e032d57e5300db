"""`make serve` (what the README leads with) builds the demo model, serves it beside the
embedding model and answers /v1/models and gRPC health; Ctrl-C style SIGINT stops it
cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.launch import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    shutil.which("make") is None or not (REPO / ".venv" / ".installed").exists(),
    reason="needs make and the Makefile's installed .venv",
)
def test_make_serve_answers_models_and_grpc_health(tmp_path: Path) -> None:
    http_port, grpc_port = free_port(), free_port()
    args = (
        f"--host 127.0.0.1 --port {http_port} --grpc-host 127.0.0.1 "
        f"--grpc-port {grpc_port} --max-model-len 256"
    )
    log = (tmp_path / "make.log").open("wb")
    process = subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "serve",
            f"DEMO_MODEL={tmp_path / 'demo'}",
            f"WHISPER_MODEL={tmp_path / 'whisper'}",
            f"SERVE_ARGS={args}",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        models = _wait_for_models(f"http://127.0.0.1:{http_port}", process, tmp_path)
        ids = [m["id"] for m in models["data"]]
        assert ids[0] == "demo" and "all-MiniLM-L6-v2" in ids, ids  # embeddings beside chat
        assert "whisper" in ids, ids  # and the speech demo
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = process.wait(timeout=60)
    output = (tmp_path / "make.log").read_text()
    # make itself reports the interrupt (killed by SIGINT); protoserve stops cleanly.
    assert code in (0, -signal.SIGINT), output
    assert "grpc server stopped" in output and "Finished server process" in output, output
    assert "Traceback" not in output, output


def _wait_for_models(url: str, process: subprocess.Popen, tmp_path: Path) -> dict:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "make.log").read_text()
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return httpx.get(f"{url}/v1/models", timeout=10).json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError((tmp_path / "make.log").read_text())


def test_models_are_unavailable_while_loading() -> None:
    """Until every model is loaded, the registry answers UNAVAILABLE (REST 503)."""
    from service.errors import Unavailable
    from service.registry import ModelRegistry

    registry = ModelRegistry()
    with pytest.raises(Unavailable):
        registry.all()
    with pytest.raises(Unavailable):
        registry.get("demo")
