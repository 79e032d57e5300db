"""The bridge's settings, built by the CLI (or by tests) and passed to create_app."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP front: request id echo, CORS (vLLM's flags and defaults), root path."""

    # --enable-request-id-headers: X-Request-Id on every response.
    enable_request_id_headers: bool = False
    allowed_origins: tuple[str, ...] = ()
    allowed_methods: tuple[str, ...] = ("*",)
    allowed_headers: tuple[str, ...] = ("*",)
    allow_credentials: bool = False
    # --root-path: the prefix a path-routing proxy serves the bridge under (uvicorn's
    # root_path: routes match with or without it; /openapi.json names it in `servers`).
    root_path: str = ""


@dataclass(frozen=True)
class BridgeSettings:
    # Where the gRPC service listens: "host:port" or "unix:/path.sock".
    grpc_target: str = "127.0.0.1:50051"
    host: str = "0.0.0.0"
    port: int = 8000
    # Seconds a request may wait for the service to answer its first byte.
    grpc_connect_timeout: float = 30.0
    # Largest audio upload (--max-audio-clip-filesize-mb); the service checks it too.
    max_audio_file_mb: float = 25.0
    http: HttpSettings = field(default_factory=HttpSettings)
