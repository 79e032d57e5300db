"""Continuous batching under a token budget (policy).

Every request has a rank, and the rank key is the whole scheduling policy: arrival order
("fcfs"), or priority then arrival ("priority", lower runs first). Each step: running
requests first, best rank first (decodes and unfinished prefill chunks), then waiting
requests are admitted in rank order while tokens, sequence slots and KV blocks last;
nobody overtakes the head of the queue. When a running request needs a block and none is
free, the worst-ranked running request is preempted: its blocks are released (cached ones
keep their hashes) and it waits, by rank, to be recomputed. A waiting request that ranks
above running ones (only possible under "priority") preempts them, worst first, when it
cannot otherwise be admitted.

Admission starts a request at the longest cached prefix of its full blocks, leaving at
least one token to compute so that the last position's logits exist.

The KV cache manager is the mechanism: it hands out blocks and reports when it cannot."""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from engine.block_hash import extend_block_hashes
from engine.config import SCHEDULING_POLICIES, SchedulerConfig
from engine.kv_cache import NO_PREFIX, CachedPrefix, KVCacheManager
from engine.request import Request, RequestStatus
from engine.scheduler_output import ScheduledSequence, SchedulerOutput

__all__ = ["RANK_KEYS", "ScheduledSequence", "Scheduler", "SchedulerOutput"]

log = structlog.get_logger(__name__)

# Lower ranks run first and are preempted last.
RANK_KEYS: dict[str, Callable[[Request], tuple[int, ...]]] = {
    "fcfs": lambda r: (r.arrival_seq,),
    "priority": lambda r: (r.priority, r.arrival_seq),
}
assert set(RANK_KEYS) == set(SCHEDULING_POLICIES)


@dataclass
class _Step:
    """What one schedule() call has decided so far."""

    tokens: int  # token budget left
    sequences: list[ScheduledSequence] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)


class Scheduler:
    def __init__(self, config: SchedulerConfig, kv: KVCacheManager) -> None:
        self.config = config
        self.kv = kv
        self._rank = RANK_KEYS[config.policy]
        self.waiting: list[Request] = []  # sorted by rank; preempted ones included
        self.running: list[Request] = []  # sorted by rank
        self._requests: dict[str, Request] = {}
        self._next_arrival_seq = 0
        # Prefix cache lookups at admission, in tokens; cumulative, counted only here.
        self.prefix_cache_queries = 0
        self.prefix_cache_hits = 0
        self.num_preemptions = 0  # cumulative, counted only here

    # -- requests in and out -------------------------------------------------------------
    def add_request(self, request: Request) -> None:
        assert request.request_id not in self._requests, "engine checks ids first"
        request.arrival_seq = self._next_arrival_seq
        self._next_arrival_seq += 1
        self._hash_new_blocks(request)
        self._requests[request.request_id] = request
        bisect.insort(self.waiting, request, key=self._rank)

    def get_request(self, request_id: str) -> Request | None:
        return self._requests.get(request_id)

    def finish_request(
        self, request_id: str, status: RequestStatus, stop_token_id: int | None = None
    ) -> Request:
        """Remove a request (stopped, length, aborted) and release its blocks at once."""
        assert status.is_finished
        request = self._requests.pop(request_id)
        if request.status == RequestStatus.RUNNING:
            self.running.remove(request)
        else:
            self.waiting.remove(request)
        request.status = status
        request.stop_token_id = stop_token_id
        self.kv.free(request_id)
        return request

    def has_unfinished_requests(self) -> bool:
        return bool(self._requests)

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    # -- one step ------------------------------------------------------------------------
    def schedule(self) -> SchedulerOutput:
        step = _Step(self.config.max_num_batched_tokens)
        self._schedule_running(step)
        if not step.preempted:  # blocks are short: admitting more would only churn
            self._admit_waiting(step)
        self.num_preemptions += len(step.preempted)
        return SchedulerOutput(step.sequences, step.preempted, self.kv.take_copies())

    def update_from_output(
        self, output: SchedulerOutput, sampled: list[int | None]
    ) -> list[Request]:
        """Advance computed tokens (caching blocks they fill), append sampled tokens;
        returns the requests that got one. None: the row chose no token (a beam: the
        engine appends the beam search's choice later, with append_token)."""
        tokens = iter(sampled)
        updated: list[Request] = []
        for seq in output.sequences:
            request = self._requests[seq.request_id]
            request.num_computed_tokens += seq.num_new_tokens
            self.kv.cache_full_blocks(
                request.request_id, request.block_hashes, request.num_computed_tokens
            )
            if seq.samples and (token := next(tokens)) is not None:
                self.append_token(request, token)
                updated.append(request)
        assert next(tokens, None) is None, "one sampled token per sampling sequence"
        return updated

    def append_token(self, request: Request, token_id: int) -> None:
        request.output_token_ids.append(token_id)
        self._hash_new_blocks(request)

    def fork_request(self, parent_id: str, child_id: str) -> Request:
        """A new request with the parent's tokens and state; a running parent's blocks are
        shared with it (beam search). Same rank as the parent."""
        assert child_id not in self._requests
        parent = self._requests[parent_id]
        child = dataclasses.replace(
            parent,
            request_id=child_id,
            output_token_ids=list(parent.output_token_ids),
            block_hashes=list(parent.block_hashes),
        )
        self._requests[child_id] = child
        if parent.status == RequestStatus.RUNNING:
            self.kv.fork(parent_id, child_id)
            bisect.insort(self.running, child, key=self._rank)
        else:
            bisect.insort(self.waiting, child, key=self._rank)
        return child

    # -- policy pieces -------------------------------------------------------------------
    def _schedule_running(self, step: _Step) -> None:
        index = 0
        while index < len(self.running) and step.tokens > 0:
            request = self.running[index]
            if request.num_uncomputed_tokens == 0:  # a beam waiting for its siblings
                index += 1
                continue
            num_new = min(request.num_uncomputed_tokens, step.tokens)
            if not self._reserve_or_preempt(request, num_new, step):
                break  # the request itself ranked last and got preempted
            self._schedule(request, num_new, step)
            index += 1

    def _reserve_or_preempt(self, request: Request, num_new: int, step: _Step) -> bool:
        """Blocks for `num_new` more tokens, preempting the worst-ranked until they fit."""
        start = request.num_computed_tokens
        while not self.kv.allocate_slots(request.request_id, start + num_new, write_from=start):
            victim = self.running[-1]
            self._preempt(victim, step)
            if victim is request:
                return False
        return True

    def _admit_waiting(self, step: _Step) -> None:
        while self.waiting and step.tokens > 0:
            request = self.waiting[0]
            prefix = NO_PREFIX
            if request.sampling_params.prompt_logprobs is None:  # else every position runs
                prefix = self.kv.find_cached_prefix(request.block_hashes, request.num_tokens - 1)
            num_new = self._prefill_chunk(request.num_tokens - prefix.num_tokens, step.tokens)
            if num_new == 0 or not self._seat(request, prefix, num_new, step):
                break  # nobody overtakes the head of the queue
            self.waiting.pop(0)
            self._start(request, prefix)
            self._schedule(request, num_new, step)

    def _prefill_chunk(self, needed: int, budget_tokens: int) -> int:
        """Tokens of a waiting request's (re)prefill that fit in this step; 0 = none."""
        if needed <= budget_tokens:
            return needed
        return budget_tokens if self.config.enable_chunked_prefill else 0

    def _seat(self, request: Request, prefix: CachedPrefix, num_new: int, step: _Step) -> bool:
        """A sequence slot and blocks for a waiting request; while they are short, running
        requests ranked below it are preempted, worst first."""
        target = prefix.num_tokens + num_new
        while not (
            len(self.running) < self.config.max_num_seqs
            and self.kv.allocate_slots(request.request_id, target, prefix)
        ):
            if not self.running or self._rank(self.running[-1]) < self._rank(request):
                return False
            self._preempt(self.running[-1], step)
        return True

    def _start(self, request: Request, prefix: CachedPrefix) -> None:
        request.status = RequestStatus.RUNNING
        request.num_computed_tokens = prefix.num_tokens
        if request.num_cached_tokens < 0:  # set once, at the first admission
            request.num_cached_tokens = prefix.num_tokens
        if self.kv.enable_prefix_caching:
            self.prefix_cache_queries += request.num_tokens
            self.prefix_cache_hits += prefix.num_tokens
        bisect.insort(self.running, request, key=self._rank)

    def _preempt(self, request: Request, step: _Step) -> None:
        """Recompute-style preemption: keep the generated tokens, release the blocks."""
        self.running.remove(request)
        self.kv.free(request.request_id)
        request.status = RequestStatus.PREEMPTED
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        bisect.insort(self.waiting, request, key=self._rank)
        step.preempted.append(request.request_id)
        for index, seq in enumerate(step.sequences):  # scheduled earlier in this step
            if seq.request_id == request.request_id:
                step.tokens += seq.num_new_tokens
                del step.sequences[index]
                break
        log.debug("preempted", request_id=request.request_id, tokens=request.num_tokens)

    def _schedule(self, request: Request, num_new: int, step: _Step) -> None:
        start = request.num_computed_tokens
        end = start + num_new
        step.tokens -= num_new
        step.sequences.append(
            ScheduledSequence(
                request_id=request.request_id,
                token_ids=request.token_ids_between(start, end),
                start_position=start,
                block_ids=self.kv.block_ids(request.request_id),
                samples=end == request.num_tokens,
                sampling_params=request.sampling_params,
                num_output_tokens=request.num_output_tokens,
                prompt_token_ids=request.prompt_token_ids,
                output_token_ids=request.output_token_ids,
                wants_prompt_logits=request.sampling_params.prompt_logprobs is not None,
            )
        )

    def _hash_new_blocks(self, request: Request) -> None:
        """Extend the request's full-block hashes over tokens it gained."""
        block_size = self.kv.block_size
        start = len(request.block_hashes) * block_size
        if self.kv.enable_prefix_caching and request.num_tokens - start >= block_size:
            new_tokens = request.token_ids_between(start, request.num_tokens)
            extend_block_hashes(request.block_hashes, new_tokens, block_size, request.cache_salt)

    # -- invariants ----------------------------------------------------------------------
    def check_integrity(self) -> None:
        """Blocks die with running: exactly the running requests hold tables, each
        covering its computed tokens; both queues in rank order; then the KV checks."""
        assert set(self.kv.request_ids()) == {r.request_id for r in self.running}
        for request in self.running:
            blocks = len(self.kv.block_ids(request.request_id))
            assert blocks * self.kv.block_size >= request.num_computed_tokens
        assert all(r.num_computed_tokens == 0 for r in self.waiting)
        assert self.running == sorted(self.running, key=self._rank)
        assert self.waiting == sorted(self.waiting, key=self._rank)
        self.kv.check_integrity()
