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
    # Admission (--max-queued-requests): a new request is refused (RESOURCE_EXHAUSTED)
    # while this many engine requests of its model wait; None = no limit.
    max_queued_requests: int | None = None


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
class ChatOptions:
    """How chat requests are rendered and their outputs read (flags mirror `vllm serve`)."""

    # --chat-template-content-format: auto (detected from the template), string, openai.
    content_format: str = "auto"
    # --default-chat-template-kwargs (JSON object text); a request's kwargs win.
    default_chat_template_kwargs: str | None = None
    # --response-role: the role of replies when add_generation_prompt is true.
    response_role: str = "assistant"
    enable_auto_tool_choice: bool = False
    tool_call_parser: str | None = None
    # --tool-parser-plugin: a Python file registering more tool parsers.
    tool_parser_plugin: str | None = None
    reasoning_parser: str | None = None
    exclude_tools_when_tool_choice_none: bool = False


@dataclass(frozen=True)
class TlsOptions:
    """gRPC server TLS (--grpc-ssl-*): PEM files. With `ca_certs`, clients may present a
    certificate signed by it; `client_auth` requires one (mTLS)."""

    certfile: str
    keyfile: str
    ca_certs: str | None = None
    client_auth: bool = False


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
    chat: ChatOptions = field(default_factory=ChatOptions)
    # Seconds in-flight RPCs get to finish on shutdown.
    shutdown_timeout: float = 10.0
    audio: AudioOptions = field(default_factory=AudioOptions)
    # --max-stored-responses: the Responses store's LRU capacity (0: store nothing).
    max_stored_responses: int = 1024
    # --api-key: every RPC but health and reflection needs `authorization: Bearer <key>`.
    api_keys: tuple[str, ...] = ()
    # TLS on the TCP listener (the unix socket of `serve` stays local and plaintext).
    tls: TlsOptions | None = None
    # --max-request-size: the largest gRPC message received or sent.
    max_message_bytes: int = 64 << 20
    # Prometheus /metrics on this port of `host` (0: a free port; None: none). The
    # MetricsService RPC serves the same text either way.
    metrics_port: int | None = None
    # One "request finished" log line per request (--disable-log-requests turns it off).
    log_requests: bool = True
