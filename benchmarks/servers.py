"""Servers started for `bench serve`: `protoserve serve` (gRPC service + REST bridge) and,
as the baseline, `transformers serve` on the same local model directory, each a
subprocess on free 127.0.0.1 ports with its log in the results directory; always stopped
(SIGTERM, then SIGKILL) when the block ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class Server:
    name: str
    http_url: str
    grpc_target: str | None
    model: str  # the name requests carry
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def protoserve_command(
    model_dir: Path, name: str, http: int, grpc: int, device: str, engine: dict
) -> list:
    command = [
        sys.executable, "-m", "service.cli", "serve", str(model_dir),
        "--served-model-name", name, "--host", "127.0.0.1", "--port", str(http),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc), "--log-level", "warning",
        "--device", device,
    ]  # fmt: skip
    for flag, value in engine.items():
        if value is not None:
            command += [f"--{flag.replace('_', '-')}", str(value)]
    return command


def transformers_command(
    model_dir: Path, port: int, mode: str, attn: str, device: str, cb: dict
) -> list:
    """`transformers serve DIR`: the directory is the forced model (loaded at start, never
    unloaded); requests must name it. HF_HUB_OFFLINE keeps it off the hub."""
    executable = shutil.which("transformers", path=str(Path(sys.executable).parent))
    command = [
        executable or "transformers", "serve", str(model_dir), "--host", "127.0.0.1",
        "--port", str(port), "--device", device, "--dtype", "float32",
        "--attn-implementation", attn, "--log-level", "warning",
    ]  # fmt: skip
    if mode == "cb":
        command += ["--continuous-batching"]
        for flag, value in cb.items():
            command += [f"--cb-{flag.replace('_', '-')}", str(value)]
    return command


@contextlib.contextmanager
def running(
    name: str, command: list, http_url: str, grpc_target: str | None, model: str,
    log_dir: Path, timeout: float, env: dict[str, str] | None = None,
) -> Iterator[Server]:  # fmt: skip
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **OFFLINE_ENV, **(env or {})},
        )  # fmt: skip
    server = Server(name, http_url, grpc_target, model, process, log_path)
    try:
        _wait_ready(server, timeout)
        yield server
    finally:
        stop(process)


def _wait_ready(server: Server, timeout: float) -> None:
    """/health answers 200 (both servers: ours once the model is loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.http_url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{server.name} not ready after {timeout:.0f}s:\n{server.log_tail()}")


def peak_rss_mib(pid: int) -> dict[str, float]:
    """Peak RSS (VmHWM, MiB) of a server process and of each child (protoserve serve runs
    the bridge as a child), read from /proc while they run; empty where /proc is absent."""
    peaks = {}
    for proc in [pid, *_children(pid)]:
        with contextlib.suppress(OSError, ValueError):
            status = Path(f"/proc/{proc}/status").read_text().splitlines()
            name = next(line.split()[1] for line in status if line.startswith("Name:"))
            hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
            peaks[f"{proc}:{name}"] = round(hwm / 1024, 1)
    return peaks


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in task.read_text().split()]
    return children


def engine_state(grpc_target: str, model: str) -> dict:
    """The served model's KV cache and queues after a run (ModelsService.GetModel)."""
    import grpc

    from protoserve.models.v1 import models_pb2, models_pb2_grpc

    with grpc.insecure_channel(grpc_target) as channel:
        stub = models_pb2_grpc.ModelsServiceStub(channel)
        stats = stub.GetModel(models_pb2.GetModelRequest(name=model), timeout=30).stats
    return {
        "num_running": stats.num_running,
        "num_waiting": stats.num_waiting,
        "kv_blocks_total": stats.kv_blocks_total,
        "kv_blocks_free": stats.kv_blocks_free,
        "all_free": stats.kv_blocks_free == stats.kv_blocks_total and stats.num_running == 0,
        "prefix_cache_queries": stats.prefix_cache_queries,
        "prefix_cache_hits": stats.prefix_cache_hits,
    }


def stop(process: subprocess.Popen, timeout: float = 30) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
