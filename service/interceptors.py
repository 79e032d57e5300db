"""Server interceptors: one place that maps exceptions to gRPC status, and binds the
request id into every log line of the call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from engine.errors import EngineDeadError, InvalidParameter
from service.errors import (
    STATUS_DETAILS_KEY,
    Internal,
    InvalidArgument,
    ServiceError,
    status_details,
)

log = structlog.get_logger(__name__)

REQUEST_ID_KEY = "x-request-id"


def request_id_of(context: grpc.aio.ServicerContext, fallback: str = "") -> str:
    """The caller's x-request-id metadata, else `fallback` (a body field), else a new id."""
    request_id = _metadata_request_id(context) or fallback or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def _metadata_request_id(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and value:
            return value
    return ""


def to_service_error(exc: Exception) -> ServiceError:
    """Every exception a handler can raise, as the error the caller sees."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, InvalidParameter):
        return InvalidArgument(str(exc), field=exc.field)
    if isinstance(exc, EngineDeadError):
        return Internal(_engine_dead_message(exc))
    log.exception("unhandled error", error=repr(exc))
    return Internal("Internal server error")


def _engine_dead_message(exc: EngineDeadError) -> str:
    """The cause's type only: its text may hold paths or device details."""
    cause = exc.__cause__
    if cause is None or isinstance(cause, EngineDeadError):
        return "The engine is not running; the server is shutting down."
    return f"The engine failed ({type(cause).__name__}); the server is shutting down."


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    error = to_service_error(exc)
    if error.code != grpc.StatusCode.INTERNAL:
        log.info("request failed", code=error.code.name, error=error.message)
    await context.abort(
        error.code, error.message, trailing_metadata=((STATUS_DETAILS_KEY, status_details(error)),)
    )


def _wrap_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        _bind_request_id(context)
        try:
            return await behavior(request_or_iterator, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a status here, once
            await _abort(context, exc)

    return handler


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        _bind_request_id(context)
        try:
            async for response in behavior(request_or_iterator, context):
                yield response
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001
            await _abort(context, exc)

    return handler


def _bind_request_id(context: grpc.aio.ServicerContext) -> None:
    """Log lines of this call carry the caller's request id (the call runs in its own
    task, so the binding stays local to it)."""
    structlog.contextvars.clear_contextvars()
    if request_id := _metadata_request_id(context):
        structlog.contextvars.bind_contextvars(request_id=request_id)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler so a raised error becomes the right status and message."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary:
            return handler._replace(unary_unary=_wrap_unary(handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=_wrap_unary(handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=_wrap_stream(handler.unary_stream))
        return handler._replace(stream_stream=_wrap_stream(handler.stream_stream))
