"""Fixtures: the descriptor set, and the front stack (Envoy -> `protoserve serve`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from envoy_stack import Envoy, Serve, load_repo_module, require_tool


@pytest.fixture(scope="session")
def descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make proto` writes to envoy/protoserve.binpb, built fresh for the session."""
    build = load_repo_module("proto/build.py", "proto_build")
    path = tmp_path_factory.mktemp("descriptor") / "protoserve.binpb"
    build.descriptor_set(path)
    return path


@pytest.fixture(scope="session")
def envoy_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envoy")


@dataclass(frozen=True)
class Front:
    envoy: Envoy
    serve: Serve


@pytest.fixture(scope="session")
def front(demo_model_dir: Path, descriptor: Path, envoy_logs: Path) -> Iterator[Front]:
    """Envoy (front.yaml) before `protoserve serve` (gRPC service + REST bridge)."""
    require_tool("envoy")
    serve = Serve.start(demo_model_dir, envoy_logs, "--max-model-len", "512")
    envoy = None
    try:
        envoy = Envoy.start(
            envoy_logs, descriptor, [serve.grpc_target], bridge=f"127.0.0.1:{serve.http_port}"
        )
        yield Front(envoy, serve)
    finally:
        if envoy is not None:
            envoy.process.stop()
        code = serve.process.stop()
    assert code == 0, f"protoserve serve exited with {code}:\n{serve.process.log()[-4000:]}"
