"""Scheduling policy without a model: budgets, chunked prefill, FCFS, preemption, and
admission from the prefix cache. Prompts here are runs of consecutive ids, so they share
prefixes: tests about other things turn prefix caching off."""

from __future__ import annotations

from engine.config import SchedulerConfig
from engine.kv_cache import KVCacheManager
from engine.request import Request, RequestStatus
from engine.sampling_params import SamplingParams
from engine.scheduler import Scheduler, SchedulerOutput


def _scheduler(
    num_blocks: int = 64, block_size: int = 4, caching: bool = False, **config
) -> Scheduler:
    return Scheduler(SchedulerConfig(**config), KVCacheManager(num_blocks, block_size, caching))


def _add(scheduler: Scheduler, request_id: str, prompt_len: int, first: int = 10) -> Request:
    prompt = list(range(first, first + prompt_len))
    request = Request(request_id, prompt, SamplingParams(), 0.0)
    scheduler.add_request(request)
    return request


def _step(scheduler: Scheduler, token: int = 7) -> SchedulerOutput:
    out = scheduler.schedule()
    scheduler.update_from_output(out, [token] * len(out.sampling_sequences))
    scheduler.check_integrity()
    return out


def _shape(out: SchedulerOutput) -> list[tuple[str, int, bool]]:
    return [(s.request_id, s.num_new_tokens, s.samples) for s in out.sequences]


def test_decodes_first_then_prefills_under_the_token_budget() -> None:
    s = _scheduler(max_num_batched_tokens=10)
    _add(s, "a", 6)
    _add(s, "b", 3)
    assert _shape(_step(s)) == [("a", 6, True), ("b", 3, True)]
    _add(s, "c", 5)
    _add(s, "d", 2)
    # a and b decode (1 token each), then c and d prefill whole: 9 of 10 tokens.
    out = _step(s)
    assert _shape(out) == [("a", 1, True), ("b", 1, True), ("c", 5, True), ("d", 2, True)]
    assert out.num_batched_tokens == 9


def test_chunked_prefill_samples_only_on_the_last_chunk() -> None:
    s = _scheduler(max_num_batched_tokens=4)
    request = _add(s, "a", 10)
    steps = [_shape(_step(s)) for _ in range(4)]
    assert steps == [[("a", 4, False)], [("a", 4, False)], [("a", 2, True)], [("a", 1, True)]]
    assert request.output_token_ids == [7, 7] and request.num_computed_tokens == 11


def test_chunk_positions_and_tokens_follow_the_prompt() -> None:
    s = _scheduler(max_num_batched_tokens=4)
    _add(s, "a", 6)
    first, second = _step(s).sequences[0], _step(s).sequences[0]
    assert (first.start_position, first.token_ids) == (0, [10, 11, 12, 13])
    assert (second.start_position, second.token_ids) == (4, [14, 15])
    assert second.block_ids == [0, 1]


def test_without_chunking_a_prompt_waits_for_a_whole_budget_fcfs() -> None:
    s = _scheduler(max_num_batched_tokens=8, enable_chunked_prefill=False)
    _add(s, "a", 5)
    _add(s, "b", 6)  # does not fit next to a
    _add(s, "c", 1)  # would fit, but must not overtake b
    assert _shape(_step(s)) == [("a", 5, True)]
    assert _shape(_step(s)) == [("a", 1, True), ("b", 6, True), ("c", 1, True)]


def test_max_num_seqs_caps_the_batch() -> None:
    s = _scheduler(max_num_seqs=2)
    for rid in "abc":
        _add(s, rid, 2)
    assert [sid for sid, _, _ in _shape(_step(s))] == ["a", "b"]
    assert s.num_running == 2 and s.num_waiting == 1


def test_preemption_frees_the_latest_arrival_and_resumes_it_first() -> None:
    s = _scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64)
    _add(s, "a", 4)
    b = _add(s, "b", 7)  # a: 1 block, b: 2 blocks; 1 block free
    _step(s, token=1)  # a and b sample; a now needs a 2nd block, b fits in its 2 blocks
    _add(s, "c", 3)
    out = _step(s, token=2)  # a takes the last free block; c waits, no block left
    assert [q.request_id for q in out.sequences] == ["a", "b"]
    _step(s, token=3)  # b (8 -> 9 tokens) needs a third block: none free, b preempted
    assert b.status == RequestStatus.PREEMPTED and b.num_computed_tokens == 0
    assert list(s.waiting) == [b, s.get_request("c")]  # front of the queue, before c
    assert b.output_token_ids == [1, 2]  # kept for recompute
    assert s.num_preemptions == 1  # vllm:num_preemptions
    s.finish_request("a", RequestStatus.FINISHED_LENGTH)
    out = _step(s, token=4)
    resumed = out.sequences[0]
    assert resumed.request_id == "b" and resumed.start_position == 0
    assert resumed.token_ids == b.prompt_token_ids + [1, 2] and resumed.samples
    assert b.output_token_ids == [1, 2, 4]


def test_running_request_preempts_itself_when_it_is_the_latest() -> None:
    s = _scheduler(num_blocks=2, block_size=2, max_num_batched_tokens=64)
    a, b = _add(s, "a", 2), _add(s, "b", 2)
    _step(s)
    out = s.schedule()  # a needs a block: the latest arrival b goes; a continues
    assert out.preempted_request_ids == ["b"] and [q.request_id for q in out.sequences] == ["a"]
    assert a.status == RequestStatus.RUNNING and b.status == RequestStatus.PREEMPTED


def test_finish_frees_blocks_from_any_state() -> None:
    s = _scheduler(max_num_batched_tokens=4)
    _add(s, "a", 6)
    _add(s, "b", 3)
    _step(s)  # a partly prefilled (running), b waiting
    s.finish_request("a", RequestStatus.FINISHED_ABORTED)
    s.finish_request("b", RequestStatus.FINISHED_ABORTED)
    assert not s.has_unfinished_requests()
    assert s.kv.num_free_blocks == s.kv.num_blocks
    s.kv.check_integrity()


def test_preempted_request_resumes_from_its_cached_blocks() -> None:
    s = _scheduler(num_blocks=4, block_size=4, max_num_batched_tokens=64, caching=True)
    _add(s, "a", 4, first=100)
    b = _add(s, "b", 7)
    _step(s, token=1)
    _step(s, token=2)
    out = _step(s, token=3)  # as above: b (9 tokens, 8 computed) is preempted
    assert out.preempted_request_ids == ["b"] and b.num_computed_tokens == 0
    s.finish_request("a", RequestStatus.FINISHED_LENGTH)
    resumed = _step(s, token=4).sequences[0]
    # Its two full blocks kept their hashes: only the last token is recomputed.
    assert (resumed.request_id, resumed.start_position, resumed.token_ids) == ("b", 8, [2])
    assert resumed.block_ids == [1, 2, 3]  # a was freed tail first: 3 before its cached 0
    assert b.num_cached_tokens == 0  # set at the first admission only
    assert (s.prefix_cache_queries, s.prefix_cache_hits) == (4 + 7 + 9, 8)


def test_admission_starts_at_the_cached_prefix() -> None:
    s = _scheduler(block_size=4, caching=True)
    _add(s, "a", 10)
    _step(s)
    b = _add(s, "b", 9)  # shares a's first 9 tokens: two full blocks cached
    c = _add(s, "c", 8)  # 8 tokens: the second block must be recomputed
    out = _step(s)
    assert _shape(out) == [("a", 1, True), ("b", 1, True), ("c", 4, True)]
    assert [q.start_position for q in out.sequences] == [10, 8, 4]
    assert (b.num_cached_tokens, c.num_cached_tokens) == (8, 4)
    assert s.kv.block_ids("b")[:2] == s.kv.block_ids("a")[:2] == [0, 1]
    assert s.kv.block_ids("c")[:1] == [0]
    s.finish_request("a", RequestStatus.FINISHED_ABORTED)  # b's shared blocks stay
    assert s.kv.block_ids("b")[:2] == [0, 1]
    _step(s)


def test_chunked_prefill_caches_each_chunk_for_later_arrivals() -> None:
    s = _scheduler(block_size=4, max_num_batched_tokens=6, caching=True)
    _add(s, "a", 14)
    _step(s)  # a: 6 tokens computed, one full block cached
    b = _add(s, "b", 14)
    out = _step(s)  # a: 6 more; b starts after the cached block
    assert _shape(out) == [("a", 6, False)]  # the budget went to a
    out = _step(s)
    assert [(q.request_id, q.start_position) for q in out.sequences] == [("a", 12), ("b", 12)]
    assert b.num_cached_tokens == 12
