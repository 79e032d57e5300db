"""The bridge's FastAPI app, built by a factory so tests can point it anywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from rest_bridge import (
    audio,
    chat,
    completions,
    convert,
    embeddings,
    http_front,
    metrics,
    models,
    openapi,
    ops,
    pooling,
    realtime,
    responses,
    scoring,
    tokenizer,
)
from rest_bridge.auth import ApiKeyMiddleware
from rest_bridge.errors import APIError, error_response, handle_exception
from rest_bridge.grpc_client import GrpcClient
from rest_bridge.limits import BodySizeLimit
from rest_bridge.settings import BridgeSettings

ROUTERS = (
    models.router,
    completions.router,
    chat.router,
    tokenizer.router,
    ops.router,
    embeddings.router,
    pooling.router,
    scoring.router,
    audio.router,
    realtime.router,
    responses.router,
    metrics.router,
)


def create_app(settings: BridgeSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.grpc = GrpcClient.from_settings(settings)
        try:
            yield
        finally:
            await app.state.grpc.close()

    app = FastAPI(title="protoserve", version=convert.version(), lifespan=lifespan)
    app.state.settings = settings
    http_front.install(app, settings.http)
    openapi.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(APIError, handle_exception)
    app.add_exception_handler(grpc.aio.AioRpcError, handle_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, handle_exception)
    # Outermost last: the key is checked before the body is read.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys)
    return app


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return error_response(APIError(400, message, "Bad Request"))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(APIError(exc.status_code, str(exc.detail)))
