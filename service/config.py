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
    # generate | pooling | auto (from the architecture: see engine.pooling.resolve_runner).
    runner: str = "auto"
    # Pooling models: JSON overrides of the checkpoint's pooling (engine.pooling.PoolerConfig).
    pooler_config: str | None = None
    # Sampling defaults: "auto" (the model's generation_config.json), "vllm" (none) or a
    # folder holding a generation_config.json; the JSON object of overrides merged over it.
    generation_config: str = "auto"
    override_generation_config: str | None = None
    # Most logprobs per position a request may ask for; -1 = the whole vocabulary.
    max_logprobs: int = 20


@dataclass(frozen=True)
class AudioOptions:
    """Limits of the speech RPCs (AudioService)."""

    # --max-audio-clip-filesize-mb (env VLLM_MAX_AUDIO_CLIP_FILESIZE_MB): an uploaded file,
    # and the PCM16 of one streamed utterance.
    max_file_mb: float = 25.0
    # --max-stream-duration: seconds of audio one StreamTranscribe call may send.
    max_stream_seconds: float = 3600.0
    # One StreamTranscribe audio chunk.
    max_chunk_bytes: int = 1 << 20

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * (1 << 20))


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
    audio: AudioOptions = field(default_factory=AudioOptions)
    # Prometheus /metrics on this port of `host` (0: a free port; None: none). The
    # MetricsService RPC serves the same text either way.
    metrics_port: int | None = None
    # One "request finished" log line per request (--disable-log-requests turns it off).
    log_requests: bool = True
