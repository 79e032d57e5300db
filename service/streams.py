"""Merging several async iterators into one, closing all of them when the consumer
stops (so every engine request behind them is aborted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def merge(iterators: list[AsyncIterator[T]]) -> AsyncIterator[T]:
    """Items of all iterators in arrival order; ends when all are exhausted."""
    if len(iterators) == 1:
        async for item in iterators[0]:
            yield item
        return
    pending: dict[asyncio.Task[T], AsyncIterator[T]] = {
        asyncio.ensure_future(anext(it)): it for it in iterators
    }
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                iterator = pending.pop(task)
                try:
                    item = task.result()
                except StopAsyncIteration:
                    continue
                pending[asyncio.ensure_future(anext(iterator))] = iterator
                yield item
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for iterator in iterators:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
