"""Blocking torch work off the event loop, on a thread that ends with the work.

The OpenMP runtime torch ships (libgomp) gives every thread that runs a parallel region a
team of worker threads, kept for as long as that thread lives. Once a process holds more
team threads than it has CPUs, libgomp throttles them all: a worker spins only ~100
iterations before sleeping on a futex, so each parallel region of the engine's step waits
for its workers to be woken. `asyncio.to_thread` runs work on the default executor,
whose threads outlive it: a model loaded there left its idle team beside the step
thread's, and on this 2-core machine the served engine's decode steps took ~15 % longer
than the same engine stepped offline (87-101 ms against 73-81 ms at batch 32 on the small
model). A thread of its own, which exits when the work is done, takes its team with it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def run_in_own_thread(fn: Callable[..., T], *args) -> T:
    """`await asyncio.to_thread(fn, *args)`, but on a new thread that exits after `fn`.
    A cancelled caller stops waiting; once started, `fn` runs to its end (threads cannot
    be interrupted) and its result is dropped."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            future.set_exception(exc)

    threading.Thread(target=run, name="torch-work", daemon=True).start()
    return await asyncio.wrap_future(future)
