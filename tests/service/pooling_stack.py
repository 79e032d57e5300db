"""An in-process stack for pooling tests: the real gRPC service (port 0) serving tiny
checkpoints and the REST bridge app over ASGI, torn down at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from rest_bridge.app import create_app
from rest_bridge.grpc_client import GrpcClient
from rest_bridge.settings import BridgeSettings
from service.config import EngineOptions, ModelSpec, ServiceConfig
from service.server import Service


@asynccontextmanager
async def pooling_stack(
    models: dict[str, Path], trust_request_chat_template: bool = False
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """(an HTTP client of the bridge, the service's gRPC target)."""
    config = ServiceConfig(
        models=tuple(ModelSpec(str(path), (name,)) for name, path in models.items()),
        engine=EngineOptions(max_model_len=64, max_num_batched_tokens=256, device="cpu"),
        host="127.0.0.1",
        grpc_port=0,
        shutdown_timeout=1,
        trust_request_chat_template=trust_request_chat_template,
    )
    service = await Service.start(config)
    await service.load_models()
    target = f"127.0.0.1:{service.port}"
    app = create_app(BridgeSettings(grpc_target=target))
    app.state.grpc = GrpcClient.connect(target)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge")
    try:
        yield http, target
    finally:
        await http.aclose()
        await app.state.grpc.close()
        await service.stop()
