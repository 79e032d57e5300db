"""The "priority" scheduling policy: queue order, victims when blocks run out, arrivals
preempting lower-priority running requests; "fcfs" refusing a non-zero priority."""

from __future__ import annotations

import pytest
from engine_helpers import make_engine, prompts, run_all, tokens

from engine import AsyncEngine, InvalidParameter, SamplingParams
from engine.config import SchedulerConfig
from engine.kv_cache import KVCacheManager
from engine.request import Request, RequestStatus
from engine.scheduler import Scheduler, SchedulerOutput


def _scheduler(policy: str = "priority", num_blocks: int = 64, **config) -> Scheduler:
    kv = KVCacheManager(num_blocks, block_size=4, enable_prefix_caching=False)
    return Scheduler(SchedulerConfig(policy=policy, **config), kv)


def _add(s: Scheduler, request_id: str, prompt_len: int, priority: int = 0) -> Request:
    first = 10 + 100 * len(s._requests)  # distinct prompts
    prompt = list(range(first, first + prompt_len))
    request = Request(request_id, prompt, SamplingParams(), 0.0, priority=priority)
    s.add_request(request)
    return request


def _step(s: Scheduler) -> SchedulerOutput:
    out = s.schedule()
    s.update_from_output(out, [7] * len(out.sampling_sequences))
    s.check_integrity()
    return out


def _ids(out: SchedulerOutput) -> list[tuple[str, int]]:
    return [(q.request_id, q.num_new_tokens) for q in out.sequences]


def test_waiting_requests_run_by_priority_then_arrival() -> None:
    s = _scheduler(max_num_seqs=1)
    for rid, priority in [("a", 5), ("b", 1), ("c", 1), ("d", 0)]:
        _add(s, rid, 3, priority)
    assert [r.request_id for r in s.waiting] == ["d", "b", "c", "a"]
    order = []
    for _ in range(4):
        (seq,) = _step(s).sequences
        order.append(seq.request_id)
        s.finish_request(seq.request_id, RequestStatus.FINISHED_LENGTH)
    assert order == ["d", "b", "c", "a"]


def test_running_requests_get_the_budget_by_priority() -> None:
    s = _scheduler(max_num_batched_tokens=8)
    _add(s, "low", 3, priority=2)
    _add(s, "high", 3, priority=0)
    assert _ids(_step(s)) == [("high", 3), ("low", 3)]
    s2 = _scheduler(max_num_batched_tokens=1)
    _add(s2, "low", 1, priority=2)
    _add(s2, "high", 1, priority=0)
    assert _ids(_step(s2)) == [("high", 1)]
    assert _ids(_step(s2)) == [("high", 1)]  # low waits for a token of budget


def test_out_of_blocks_the_lowest_priority_is_preempted_not_the_latest() -> None:
    s = _scheduler(num_blocks=3)
    a = _add(s, "a", 4, priority=0)
    b = _add(s, "b", 4, priority=2)
    _add(s, "c", 3, priority=1)  # arrives last, but b ranks lower
    _step(s)  # one block each, none free
    out = _step(s)  # a (5 tokens) needs a second block
    assert out.preempted_request_ids == ["b"] and b.status == RequestStatus.PREEMPTED
    assert _ids(out) == [("a", 1), ("c", 1)]
    # Admitted by priority (a: 0, c: 1, b: 2); a took b's block.
    assert s.kv.block_ids("a") == [0, 2] and a.num_computed_tokens == 5


def test_seat_limited_arrival_preempts_the_lowest_priority() -> None:
    s = _scheduler(max_num_seqs=2)
    low = _add(s, "low", 3, priority=5)
    _add(s, "mid", 3, priority=3)
    _step(s)
    _add(s, "high", 4, priority=0)
    out = _step(s)
    assert out.preempted_request_ids == ["low"]
    assert _ids(out) == [("mid", 1), ("high", 4)]  # low's decode left the step
    assert low.status == RequestStatus.PREEMPTED and low.output_token_ids == [7]
    assert [r.request_id for r in s.running] == ["high", "mid"]
    assert list(s.waiting) == [low]


@pytest.mark.parametrize(
    ("policy", "arrival_priority", "preempted"),
    [("priority", 0, ["low"]), ("priority", 2, []), ("fcfs", 0, [])],
)
def test_block_limited_arrival(policy: str, arrival_priority: int, preempted: list) -> None:
    """Only an arrival that outranks a running request preempts it (never under fcfs,
    never for equal priority: ties go by arrival)."""
    low_priority = 2 if policy == "priority" else 0
    s = _scheduler(policy, num_blocks=4)
    _add(s, "first", 7, priority=0)  # two blocks each, 8 tokens fit after a decode
    _add(s, "low", 7, priority=low_priority)
    _step(s)
    _add(s, "new", 6, priority=arrival_priority)
    out = _step(s)
    assert out.preempted_request_ids == preempted
    if preempted:
        assert _ids(out) == [("first", 1), ("new", 6)]
        assert s.kv.block_ids("new") == [3, 2]  # low's blocks, released tail first
    else:
        assert _ids(out) == [("first", 1), ("low", 1)] and s.num_waiting == 1


def test_fcfs_refuses_a_priority(llama) -> None:
    engine = make_engine(llama)
    with pytest.raises(InvalidParameter) as err:
        engine.add_request("r", [5, 6], SamplingParams(), priority=1)
    assert err.value.field == "priority" and "fcfs" in err.value.message
    with pytest.raises(InvalidParameter) as err:
        engine.add_request("r", [5, 6], SamplingParams(), cache_salt="")
    assert err.value.field == "cache_salt"
    engine.add_request("r", [5, 6], SamplingParams(), priority=0, cache_salt="tenant-a")
    assert engine.stats().num_waiting == 1


async def test_async_generate_passes_priority(llama) -> None:
    fcfs = AsyncEngine(make_engine(llama))
    with pytest.raises(InvalidParameter):
        await anext(fcfs.generate("r", [5, 6], SamplingParams(), priority=-1))
    engine = AsyncEngine(make_engine(llama, policy="priority"))
    engine.start()
    try:
        params = SamplingParams(temperature=0, max_tokens=3)
        stream = engine.generate("r", [5, 6, 7], params, priority=-1, cache_salt="s")
        outputs = [o async for o in stream]
        assert outputs[-1].finished and outputs[-1].num_output_tokens == 3
    finally:
        engine.shutdown()


def test_priority_preemption_keeps_outputs_identical(llama) -> None:
    """Low-priority requests fill the cache; high-priority ones arrive and preempt them.
    Every request's tokens equal its tokens from an unconstrained engine."""
    batch = prompts(10, seed=21, min_len=10, max_len=30)
    params = [
        SamplingParams(temperature=0.0, max_tokens=12)
        if k % 2
        else SamplingParams(temperature=0.9, seed=k, max_tokens=12)
        for k in range(len(batch))
    ]
    reference = make_engine(llama, max_model_len=64)
    for k, prompt in enumerate(batch):
        reference.add_request(str(k), prompt, params[k])
    expected = {rid: tokens(outs) for rid, outs in run_all(reference).items()}
    engine = make_engine(llama, max_model_len=64, num_blocks=20, policy="priority")
    preempted: list[str] = []
    schedule = engine.scheduler.schedule

    def recording() -> SchedulerOutput:
        out = schedule()
        preempted.extend(out.preempted_request_ids)
        return out

    engine.scheduler.schedule = recording
    first_done: list[str] = []
    results: dict = {}
    for k, prompt in enumerate(batch[:5]):
        engine.add_request(str(k), prompt, params[k], priority=5)
    for _ in range(3):
        for output in engine.step():
            results.setdefault(output.request_id, []).append(output)
        engine.check_integrity()
    for k, prompt in enumerate(batch[5:], start=5):
        engine.add_request(str(k), prompt, params[k], priority=0)
    while engine.has_unfinished_requests():
        for output in engine.step():
            results.setdefault(output.request_id, []).append(output)
            if output.finished:
                first_done.append(output.request_id)
        engine.check_integrity()
    assert {rid: tokens(outs) for rid, outs in results.items()} == expected
    assert set(first_done[:5]) == {"5", "6", "7", "8", "9"}  # high priority finished first
    assert set(preempted) & {"0", "1", "2", "3", "4"}  # low priority made room
    stats = engine.stats()
    assert stats.num_kv_blocks_free == stats.num_kv_blocks_total
