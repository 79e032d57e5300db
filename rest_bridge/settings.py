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
class ChannelTls:
    """The bridge -> service channel over TLS (--grpc-target-ssl-*): PEM files."""

    # Verifies the service's certificate (None: the system's roots).
    ca_certs: str | None = None
    # The bridge's own certificate and key, for a service that requires mTLS.
    certfile: str | None = None
    keyfile: str | None = None
    # The name the service's certificate must carry, when not the host of grpc_target.
    server_name: str | None = None


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
    # --api-key: callers of the guarded paths (rest_bridge/auth.py) need one of these.
    api_keys: tuple[str, ...] = ()
    # --grpc-api-key: the bridge's own key for the service; None: forward the caller's.
    grpc_api_key: str | None = None
    # --grpc-target-ssl-*: TLS to the service; None: plaintext.
    grpc_tls: ChannelTls | None = None
    # --max-request-size: bodies above it get 413; the gRPC message limit too.
    max_request_bytes: int = 64 << 20
    http: HttpSettings = field(default_factory=HttpSettings)
