"""Dynamic batching for pooling requests: one step computes one batch of whole sequences
(prefill only, nothing kept afterwards), grouped by length so little of the padded batch
is padding.

Policy: the most urgent waiting request (earliest arrival; under "priority", lowest
priority value first) is always in the next batch, so nothing starves. Around it, in the
waiting requests sorted by length, the batch grows one neighbour at a time — the shorter
or the longer one, whichever adds less padding — while rows x longest row fits
max_num_batched_tokens and rows <= max_num_seqs. A burst of mixed lengths is thus served
in length-homogeneous batches."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import SchedulerConfig
from engine.pooling.params import PoolingParams


@dataclass(eq=False)
class PoolingRequest:
    request_id: str
    prompt_token_ids: list[int]
    params: PoolingParams
    arrival_seq: int  # arrival rank, given by the scheduler
    priority: int = 0

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids)


class PoolingScheduler:
    def __init__(self, config: SchedulerConfig) -> None:
        self.max_num_seqs = config.max_num_seqs
        self.token_budget = config.max_num_batched_tokens
        self.by_priority = config.policy == "priority"
        self._waiting: dict[str, PoolingRequest] = {}
        self._next_seq = 0

    def add(self, request_id: str, token_ids: list[int], params: PoolingParams, priority: int):
        self._waiting[request_id] = PoolingRequest(
            request_id, token_ids, params, self._next_seq, priority
        )
        self._next_seq += 1

    def remove(self, request_id: str) -> PoolingRequest | None:
        return self._waiting.pop(request_id, None)

    def get(self, request_id: str) -> PoolingRequest | None:
        return self._waiting.get(request_id)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    def schedule(self) -> list[PoolingRequest]:
        """The next batch, removed from the waiting set (the caller finishes it)."""
        if not self._waiting:
            return []
        urgent = min(self._waiting.values(), key=self._urgency)
        ordered = sorted(self._waiting.values(), key=lambda r: (r.num_tokens, r.arrival_seq))
        batch = self._batch_around(ordered, ordered.index(urgent))
        for request in batch:
            del self._waiting[request.request_id]
        return batch

    def _urgency(self, request: PoolingRequest) -> tuple[int, int]:
        return (request.priority if self.by_priority else 0, request.arrival_seq)

    def _batch_around(self, ordered: list[PoolingRequest], index: int) -> list[PoolingRequest]:
        """A window of the length-sorted requests around `index`, grown one neighbour at a
        time — the one that adds less padding — while rows x longest fits the budget."""
        lo = hi = index
        longest = ordered[index].num_tokens
        while hi - lo + 1 < self.max_num_seqs:
            rows = hi - lo + 2
            waste_left = waste_right = None
            if lo > 0 and rows * longest <= self.token_budget:
                waste_left = longest - ordered[lo - 1].num_tokens
            if hi + 1 < len(ordered) and rows * ordered[hi + 1].num_tokens <= self.token_budget:
                waste_right = (rows - 1) * (ordered[hi + 1].num_tokens - longest)
            if waste_left is None and waste_right is None:
                break
            if waste_right is None or (waste_left is not None and waste_left <= waste_right):
                lo -= 1
            else:
                hi += 1
                longest = ordered[hi].num_tokens
        return ordered[lo : hi + 1]
