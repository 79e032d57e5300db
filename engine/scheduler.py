"""Continuous batching under a token budget (policy). Each step: running requests first
(decodes and unfinished prefill chunks, in arrival order), then waiting requests are
admitted FCFS while tokens, sequence slots and KV blocks last. When a running request
needs a block and none is free, the most recently arrived running request is preempted:
its blocks are freed and it waits, at the front of the queue, to be recomputed.

The KV cache manager is the mechanism: it hands out blocks and reports when it cannot."""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import structlog

from engine.config import SchedulerConfig
from engine.kv_cache import KVCacheManager
from engine.request import Request, RequestStatus
from engine.sampling_params import SamplingParams

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ScheduledSequence:
    """One request's share of a step: everything the runner and sampler may know of it."""

    request_id: str
    # Tokens whose K/V this step computes, at positions start_position, start_position + 1, ...
    token_ids: list[int]
    # Tokens of this request already in the KV cache (its context before this step).
    start_position: int
    # The request's block table, covering start_position + len(token_ids) tokens.
    block_ids: list[int]
    # True when this chunk reaches the last known token: the runner returns the logits of
    # its last row and the sampler draws the next token. False for non-final prefill chunks.
    samples: bool
    # How to sample (read by the sampler when `samples`).
    sampling_params: SamplingParams
    # Tokens generated so far (the sampler masks EOS/stop ids while below min_tokens).
    num_output_tokens: int

    @property
    def num_new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def context_len(self) -> int:
        """Tokens in the cache once this step has written its K/V."""
        return self.start_position + len(self.token_ids)


@dataclass(frozen=True)
class SchedulerOutput:
    """The contract between scheduler and runner for one step."""

    # Batch order: running requests (arrival order), then newly admitted ones.
    sequences: list[ScheduledSequence]
    # Requests preempted this step: blocks freed, waiting to be recomputed (for logs/tests).
    preempted_request_ids: list[str]

    @property
    def is_empty(self) -> bool:
        return not self.sequences

    @property
    def num_batched_tokens(self) -> int:
        return sum(s.num_new_tokens for s in self.sequences)

    @property
    def sampling_sequences(self) -> list[ScheduledSequence]:
        """The sequences that sample this step, in batch order (= logits row order)."""
        return [s for s in self.sequences if s.samples]


@dataclass
class _Budget:
    tokens: int  # tokens left in this step


class Scheduler:
    def __init__(self, config: SchedulerConfig, kv: KVCacheManager) -> None:
        self.config = config
        self.kv = kv
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []  # sorted by arrival_seq
        self._requests: dict[str, Request] = {}
        self._next_arrival_seq = 0

    # -- requests in and out -------------------------------------------------------------
    def add_request(self, request: Request) -> None:
        assert request.request_id not in self._requests, "engine checks ids first"
        request.arrival_seq = self._next_arrival_seq
        self._next_arrival_seq += 1
        self._requests[request.request_id] = request
        self.waiting.append(request)

    def get_request(self, request_id: str) -> Request | None:
        return self._requests.get(request_id)

    def finish_request(
        self, request_id: str, status: RequestStatus, stop_token_id: int | None = None
    ) -> Request:
        """Remove a request (stopped, length, aborted) and free its blocks at once."""
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
        budget = _Budget(self.config.max_num_batched_tokens)
        sequences, preempted = self._schedule_running(budget)
        if not preempted:  # blocks are short: admitting more would only churn
            sequences += self._admit_waiting(budget)
        return SchedulerOutput(sequences, preempted)

    def update_from_output(self, output: SchedulerOutput, sampled: list[int]) -> list[Request]:
        """Advance computed tokens, append sampled tokens; returns the requests that got one."""
        tokens = iter(sampled)
        updated: list[Request] = []
        for seq in output.sequences:
            request = self._requests[seq.request_id]
            request.num_computed_tokens += seq.num_new_tokens
            if seq.samples:
                request.output_token_ids.append(next(tokens))
                updated.append(request)
        assert next(tokens, None) is None, "one sampled token per sampling sequence"
        return updated

    # -- policy pieces -------------------------------------------------------------------
    def _schedule_running(self, budget: _Budget) -> tuple[list[ScheduledSequence], list[str]]:
        scheduled: list[ScheduledSequence] = []
        preempted: list[str] = []
        index = 0
        while index < len(self.running) and budget.tokens > 0:
            request = self.running[index]
            num_new = min(request.num_uncomputed_tokens, budget.tokens)
            if not self._reserve_or_preempt(request, num_new, preempted):
                break  # the request itself was the latest arrival and got preempted
            scheduled.append(self._scheduled(request, num_new))
            budget.tokens -= num_new
            index += 1
        return scheduled, preempted

    def _reserve_or_preempt(self, request: Request, num_new: int, preempted: list[str]) -> bool:
        """Blocks for `num_new` more tokens, preempting the latest arrivals until they fit."""
        target = request.num_computed_tokens + num_new
        while not self.kv.allocate_slots(request.request_id, target):
            victim = self.running[-1]
            self._preempt(victim)
            preempted.append(victim.request_id)
            if victim is request:
                return False
        return True

    def _preempt(self, request: Request) -> None:
        """Recompute-style preemption: keep the generated tokens, drop the cache."""
        self.running.remove(request)
        self.kv.free(request.request_id)
        request.status = RequestStatus.PREEMPTED
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        self.waiting.appendleft(request)
        log.debug("preempted", request_id=request.request_id, tokens=request.num_tokens)

    def _admit_waiting(self, budget: _Budget) -> list[ScheduledSequence]:
        admitted: list[ScheduledSequence] = []
        while self.waiting and budget.tokens > 0 and len(self.running) < self.config.max_num_seqs:
            request = self.waiting[0]
            num_new = self._prefill_chunk(request, budget.tokens)
            target = request.num_computed_tokens + num_new
            if num_new == 0 or not self.kv.allocate_slots(request.request_id, target):
                break  # FCFS: nobody overtakes the head of the queue
            self.waiting.popleft()
            request.status = RequestStatus.RUNNING
            bisect.insort(self.running, request, key=lambda r: r.arrival_seq)
            admitted.append(self._scheduled(request, num_new))
            budget.tokens -= num_new
        return admitted

    def _prefill_chunk(self, request: Request, budget_tokens: int) -> int:
        """Tokens of a waiting request's (re)prefill that fit in this step; 0 = none."""
        needed = request.num_uncomputed_tokens
        if needed <= budget_tokens:
            return needed
        return budget_tokens if self.config.enable_chunked_prefill else 0

    def _scheduled(self, request: Request, num_new: int) -> ScheduledSequence:
        start = request.num_computed_tokens
        end = start + num_new
        return ScheduledSequence(
            request_id=request.request_id,
            token_ids=request.token_ids_between(start, end),
            start_position=start,
            block_ids=self.kv.block_ids(request.request_id),
            samples=end == request.num_tokens,
            sampling_params=request.sampling_params,
            num_output_tokens=request.num_output_tokens,
        )
