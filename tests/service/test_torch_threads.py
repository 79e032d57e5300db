"""run_in_own_thread: results, errors and cancellation reach the caller, and the OpenMP
team torch gave the worker thread is gone once the work is done (libgomp throttles every
team's spinning while more team threads live than CPUs; see service.torch_threads)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from service.torch_threads import run_in_own_thread

TASKS = Path("/proc/self/task")


def _parallel_op() -> float:
    """A matmul large enough for torch to open an OpenMP parallel region."""
    a = torch.randn(256, 256)
    return float((a @ a).sum())


def _native_threads() -> int:
    return len(os.listdir(TASKS))


def _settled_threads(target: int, seconds: float = 5.0) -> int:
    """The native thread count once it reaches `target` (a thread that has handed back
    its result may still be exiting), or as it stands after `seconds`."""
    deadline = time.monotonic() + seconds
    while (count := _native_threads()) != target and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


def test_returns_the_result_and_runs_off_the_loop_thread():
    async def main():
        caller = threading.get_ident()
        return caller, await run_in_own_thread(threading.get_ident)

    caller, worker = asyncio.run(main())
    assert worker != caller


def test_raises_the_work_s_exception():
    def fail():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        asyncio.run(run_in_own_thread(fail))


def test_a_cancelled_caller_stops_waiting_and_the_work_still_finishes():
    finished = threading.Event()

    def slow():
        time.sleep(0.2)
        finished.set()
        return 1

    async def main():
        task = asyncio.ensure_future(run_in_own_thread(slow))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(finished.wait, 5)  # the loop stays open while it settles

    asyncio.run(main())
    assert finished.is_set()


@pytest.mark.skipif(not TASKS.is_dir(), reason="counts native threads in /proc")
@pytest.mark.skipif(torch.get_num_threads() < 2, reason="torch runs one thread: no team")
def test_the_worker_s_openmp_team_ends_with_it():
    async def main():
        before = _native_threads()
        await run_in_own_thread(_parallel_op)
        own = _settled_threads(before)
        await asyncio.to_thread(_parallel_op)  # the executor thread and its team stay
        return before, own, _native_threads()

    before, own, pooled = asyncio.run(main())
    assert own == before
    assert pooled > before  # the probe sees a team that outlives its work
