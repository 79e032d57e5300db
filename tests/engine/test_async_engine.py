"""AsyncEngine: streaming through the step thread, parity under concurrency, disconnects
and aborts freeing KV blocks, engine death, batched delivery, an idle thread that sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from engine_helpers import EOS_PROMPT, hf_greedy, make_engine, prompts

import engine.async_engine as async_engine_module
from engine import (
    AsyncEngine,
    EngineDeadError,
    FinishReason,
    InvalidParameter,
    RequestAlreadyExists,
    RequestOutput,
    SamplingParams,
)

GREEDY = SamplingParams(temperature=0.0, max_tokens=16)
ENDLESS = SamplingParams(max_tokens=400, ignore_eos=True)


@pytest.fixture
async def llama_async(llama_eos) -> AsyncIterator[AsyncEngine]:
    engine = AsyncEngine(make_engine(llama_eos))
    engine.start()
    yield engine
    engine.shutdown()


async def _collect(stream: AsyncIterator[RequestOutput]) -> list[RequestOutput]:
    return [output async for output in stream]


async def _until_idle(engine: AsyncEngine, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = engine.stats()
        if (
            stats.num_running == 0
            and stats.num_waiting == 0
            and stats.num_kv_blocks_free == stats.num_kv_blocks_total
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"engine not idle: {engine.stats()}")


async def test_staggered_streams_match_hf(llama_async: AsyncEngine, llama_eos) -> None:
    eos = llama_async.eos_token_ids[0]
    batch = [EOS_PROMPT, *prompts(7, seed=8, min_len=2, max_len=40)]
    firsts, tasks = [], []
    for k, prompt in enumerate(batch):
        stream = llama_async.generate(f"s{k}", prompt, GREEDY)
        firsts.append(await anext(stream))  # the next request joins once this one runs
        tasks.append(asyncio.create_task(_collect(stream)))
    for k, (prompt, first, task) in enumerate(zip(batch, firsts, tasks, strict=True)):
        outputs = [first, *await task]
        got = [t for o in outputs for t in o.new_token_ids]
        assert got == hf_greedy(llama_eos, prompt, 16, eos_token_id=eos), k
        assert outputs[-1].finished and all(not o.finished for o in outputs[:-1])
    await _until_idle(llama_async)


async def test_cancelled_consumer_aborts_and_frees_blocks(llama_async: AsyncEngine) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for output in llama_async.generate("c", list(range(3, 40)), ENDLESS):
            if output.num_output_tokens >= 3:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    assert llama_async.stats().num_running == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until_idle(llama_async)


async def test_closing_the_stream_aborts(llama_async: AsyncEngine) -> None:
    stream = llama_async.generate("x", [5, 6, 7], ENDLESS)
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    await _until_idle(llama_async)
    # The id is free again.
    outputs = await _collect(llama_async.generate("x", [5, 6, 7], GREEDY))
    assert outputs[-1].finished


async def test_abort_ends_the_stream_with_abort(llama_async: AsyncEngine) -> None:
    stream = llama_async.generate("a", [5, 6, 7], ENDLESS)
    await anext(stream)
    await llama_async.abort("a")
    rest = await _collect(stream)
    assert rest[-1].finished and rest[-1].finish_reason == FinishReason.ABORT
    assert rest[-1].new_token_ids == []
    await llama_async.abort("unknown-id")  # no-op
    await _until_idle(llama_async)


async def test_refusals_raise_from_the_iterator(llama_async: AsyncEngine) -> None:
    with pytest.raises(InvalidParameter) as err:
        await anext(llama_async.generate("bad", [5], SamplingParams(temperature=-1)))
    assert err.value.field == "temperature"
    with pytest.raises(InvalidParameter) as err:
        await anext(llama_async.generate("empty", [], GREEDY))
    assert err.value.field == "prompt"
    first = llama_async.generate("dup", [5, 6], ENDLESS)
    await anext(first)
    with pytest.raises(RequestAlreadyExists):
        await anext(llama_async.generate("dup", [5, 6], GREEDY))
    await first.aclose()
    await _until_idle(llama_async)


async def test_outputs_of_a_step_arrive_in_one_batch(llama_async: AsyncEngine, monkeypatch) -> None:
    sizes: list[int] = []
    deliver = async_engine_module._deliver

    def counting(deliveries):  # noqa: ANN001, ANN202
        sizes.append(len(deliveries))
        deliver(deliveries)

    monkeypatch.setattr(async_engine_module, "_deliver", counting)
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    streams = [llama_async.generate(f"b{k}", p, params) for k, p in enumerate(prompts(4, seed=9))]
    results = await asyncio.gather(*(_collect(s) for s in streams))
    assert sum(len(r) for r in results) == 32
    assert max(sizes) == 4 and len(sizes) < 32


async def test_event_loop_stays_responsive(llama_async: AsyncEngine) -> None:
    streams = [llama_async.generate(f"r{k}", p, ENDLESS) for k, p in enumerate(prompts(8, seed=10))]
    tasks = [asyncio.create_task(_collect(s)) for s in streams]
    worst, last = 0.0, time.monotonic()
    for _ in range(50):
        await asyncio.sleep(0.005)
        now = time.monotonic()
        worst, last = max(worst, now - last), now
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert worst < 0.5
    await _until_idle(llama_async)


async def test_idle_step_thread_sleeps(llama_async: AsyncEngine) -> None:
    await _collect(llama_async.generate("warm", [5, 6], GREEDY))
    cpu = time.process_time()
    await asyncio.sleep(0.3)
    assert time.process_time() - cpu < 0.1  # no busy spin


async def test_step_failure_kills_the_engine(llama_eos, monkeypatch) -> None:
    core = make_engine(llama_eos)
    engine = AsyncEngine(core)
    engine.start()
    try:
        stream = engine.generate("doomed", [5, 6, 7], ENDLESS)
        await anext(stream)

        def broken() -> list:
            raise RuntimeError("device on fire")

        monkeypatch.setattr(core, "step", broken)
        with pytest.raises(EngineDeadError) as err:
            await _collect(stream)
        assert isinstance(err.value.__cause__, RuntimeError)
        assert engine.is_dead
        with pytest.raises(EngineDeadError):
            await anext(engine.generate("after", [5], GREEDY))
    finally:
        engine.shutdown()


async def test_failure_callbacks_hear_of_a_step_failure_not_a_shutdown(llama_eos) -> None:
    core = make_engine(llama_eos)
    engine = AsyncEngine(core)
    heard: list[BaseException] = []
    engine.on_failure(heard.append)
    engine.start()
    try:
        stream = engine.generate("doomed", [5, 6, 7], ENDLESS)
        await anext(stream)
        cause = RuntimeError("device on fire")

        def broken() -> list:
            raise cause

        core.step = broken
        with pytest.raises(EngineDeadError):
            await _collect(stream)
        assert heard == [cause]
        late: list[BaseException] = []
        engine.on_failure(late.append)  # registered after the failure: called at once
        assert late == [cause]
    finally:
        engine.shutdown()

    quiet = AsyncEngine(make_engine(llama_eos))
    quiet.on_failure(heard.append)
    quiet.start()
    quiet.shutdown()
    assert heard == [cause]


async def test_shutdown_refuses_new_work(llama_eos) -> None:
    engine = AsyncEngine(make_engine(llama_eos))
    engine.start()
    engine.shutdown()
    with pytest.raises(EngineDeadError):
        await anext(engine.generate("late", [5], GREEDY))


async def test_cached_prompt_tokens_are_reported(llama_async: AsyncEngine) -> None:
    prompt = list(range(3, 40))  # 37 tokens: 9 whole blocks of 4 can be served
    first = await _collect(llama_async.generate("p1", prompt, GREEDY, cache_salt="t"))
    again = await _collect(llama_async.generate("p2", prompt, GREEDY, cache_salt="t"))
    other = await _collect(llama_async.generate("p3", prompt, GREEDY, cache_salt="u"))
    assert [o[-1].num_cached_tokens for o in (first, again, other)] == [0, 36, 0]
    stats = llama_async.stats()
    assert stats.prefix_cache_hits == 36 and stats.prefix_cache_queries == 3 * 37
    await _until_idle(llama_async)
    assert llama_async.stats().num_kv_blocks_cached > 0
