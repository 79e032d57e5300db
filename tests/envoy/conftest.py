"""Fixtures: the descriptor set, and the front stack (Envoy -> `protoserve serve`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from envoy_stack import (
    CLASSIFIER,
    EMBED_MODEL,
    SPEECH_MODEL,
    Envoy,
    Serve,
    load_repo_module,
    require_tool,
)


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
def front(
    demo_model_dir: Path,
    whisper_model_dir: Path,
    descriptor: Path,
    envoy_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Front]:
    """Envoy (front.yaml) before `protoserve serve` (gRPC service + REST bridge) serving
    the demo chat model beside an embedding model, a classifier and the speech demo."""
    from tests.pooling_models import build, minilm_dir

    require_tool("envoy")
    classifier = build("bert_classifier", tmp_path_factory.mktemp("envoy-models"), seed=3)
    models = (f"{EMBED_MODEL}={minilm_dir()}", f"{CLASSIFIER}={classifier.path}",
              f"{SPEECH_MODEL}={whisper_model_dir}")  # fmt: skip
    # 448: the tiny Whisper's decoder length (a larger --max-model-len is refused for it).
    serve = Serve.start(demo_model_dir, envoy_logs, "--max-model-len", "448", models=models)
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
