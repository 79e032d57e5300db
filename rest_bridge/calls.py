"""gRPC calls tied to the HTTP request's lifetime: a client that goes away cancels its
calls (which aborts the engine requests behind them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import grpc
from fastapi import Request

T = TypeVar("T")

DISCONNECT_POLL_SECONDS = 0.2


async def unary(request: Request, calls: list[Awaitable[T]]) -> list[T]:
    """Await unary calls concurrently; cancel them all if the client disconnects."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    gathered = asyncio.gather(*tasks)
    try:
        while True:
            done, _ = await asyncio.wait({gathered}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return gathered.result()
            if await request.is_disconnected():
                raise asyncio.CancelledError("client disconnected")
    finally:
        if not gathered.done():
            gathered.cancel()
            await asyncio.gather(gathered, return_exceptions=True)


async def opened(call: grpc.aio.UnaryStreamCall) -> grpc.aio.UnaryStreamCall:
    """Wait until the service has accepted a streaming call: it sends its headers once
    the request passed validation and admission, so a refusal is an HTTP status (400,
    503 + Retry-After, ...) rather than an SSE error frame after a 200."""
    try:
        await call.initial_metadata()
        await asyncio.sleep(0)  # a refusal (trailers only) completes the call with them
        if call.done() and await call.code() != grpc.StatusCode.OK:
            await call.read()  # raises the call's AioRpcError
    except BaseException:
        call.cancel()
        raise
    return call


async def opened_all(calls: list[grpc.aio.UnaryStreamCall]) -> list[grpc.aio.UnaryStreamCall]:
    """opened() for each; if one is refused, the others are cancelled."""
    try:
        return list(await asyncio.gather(*(opened(c) for c in calls)))
    except BaseException:
        for call in calls:
            call.cancel()
        raise


async def stream(call: grpc.aio.UnaryStreamCall) -> AsyncIterator[Any]:
    """The messages of a server-streaming call; the call is cancelled if we stop early."""
    try:
        async for message in call:
            yield message
    finally:
        call.cancel()


async def fan_in(streams: list[AsyncIterator[T]]) -> AsyncIterator[tuple[int, T]]:
    """(stream index, item) from every stream as items arrive."""
    if len(streams) == 1:
        async for item in streams[0]:
            yield 0, item
        return
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    finished = object()

    async def pump(index: int, source: AsyncIterator[T]) -> None:
        try:
            async for item in source:
                await queue.put((index, item))
        except Exception as exc:  # noqa: BLE001 - re-raised by the consumer
            await queue.put((index, exc))
        await queue.put((index, finished))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is finished:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
