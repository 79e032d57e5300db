"""The gRPC service's configuration: which models, how their engines run, where to
listen. Built by the CLI (service/cli) from flags, environment and a YAML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class EngineOptions:
    """Engine settings applied to every served model (flags mirror `vllm serve`)."""

    max_model_len: int | None = None
    max_num_seqs: int = 128
    max_num_batched_tokens: int = 2048
    block_size: int = 16
    dtype: str = "auto"
    kv_cache_memory: int | None = None
    gpu_memory_utilization: float = 0.92
    enable_prefix_caching: bool = True
    scheduling_policy: str = "fcfs"
    model_impl: str = "auto"
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class ModelSpec:
    """One served model."""

    path: str
    served_names: tuple[str, ...] = ()
    # --chat-template: a file path or the template itself.
    chat_template: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return self.served_names or (self.path,)

    def chat_template_source(self) -> str | None:
        if self.chat_template is None:
            return None
        candidate = Path(self.chat_template)
        if "{" not in self.chat_template and candidate.is_file():
            return candidate.read_text()
        return self.chat_template


@dataclass(frozen=True)
class ServiceConfig:
    models: tuple[ModelSpec, ...]
    engine: EngineOptions = field(default_factory=EngineOptions)
    host: str = "0.0.0.0"
    # 0 picks a free port (tests).
    grpc_port: int = 50051
    # Extra listener on a unix socket (the bridge started by `serve` uses it).
    uds_path: str | None = None
    trust_request_chat_template: bool = False
    # Seconds in-flight RPCs get to finish on shutdown.
    shutdown_timeout: float = 10.0
