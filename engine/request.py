"""A request's state inside the engine, with an explicit lifecycle enum.

Ownership: the scheduler is the only component that mutates a Request (status,
num_computed_tokens, output_token_ids, block_hashes, num_cached_tokens, stop_token_id);
everything else reads it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from engine.block_hash import BlockHash
from engine.sampling_params import SamplingParams


class RequestStatus(enum.IntEnum):
    WAITING = 0
    RUNNING = 1
    PREEMPTED = 2  # blocks freed; waits to be recomputed (prompt + generated tokens)
    # Finished states come last, so `is_finished` is one comparison.
    FINISHED_STOPPED = 3
    FINISHED_LENGTH = 4
    FINISHED_ABORTED = 5

    @property
    def is_finished(self) -> bool:
        return self > RequestStatus.PREEMPTED

    @property
    def finish_reason(self) -> FinishReason | None:
        return _FINISH_REASONS.get(self)


class FinishReason(enum.Enum):
    STOP = "stop"  # EOS or a stop token id
    LENGTH = "length"  # max_tokens or max_model_len
    ABORT = "abort"  # aborted by the caller


_FINISH_REASONS: dict[RequestStatus, FinishReason] = {
    RequestStatus.FINISHED_STOPPED: FinishReason.STOP,
    RequestStatus.FINISHED_LENGTH: FinishReason.LENGTH,
    RequestStatus.FINISHED_ABORTED: FinishReason.ABORT,
}


@dataclass(eq=False)
class Request:
    request_id: str
    prompt_token_ids: list[int]
    sampling_params: SamplingParams
    arrival_time: float  # time.monotonic() when added
    output_token_ids: list[int] = field(default_factory=list)
    # Tokens whose K/V are in the cache (computed or found by prefix). Reset to 0 on
    # preemption (recompute; a later admission may find its blocks again).
    num_computed_tokens: int = 0
    status: RequestStatus = RequestStatus.WAITING
    stop_token_id: int | None = None  # the EOS / stop token id that finished it
    # Arrival rank, given by the scheduler on arrival: ties in arrival_time never reorder.
    arrival_seq: int = -1
    num_preemptions: int = 0
    priority: int = 0  # lower runs first under the "priority" policy; 0 under "fcfs"
    cache_salt: str | None = None  # prefix cache isolation: only equal salts share blocks
    # Hashes of the full blocks of prompt + output (prefix caching), extended as it grows.
    block_hashes: list[BlockHash] = field(default_factory=list)
    # Prompt tokens found in the prefix cache at the first admission; -1 before it.
    num_cached_tokens: int = -1

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def num_tokens(self) -> int:
        """Prompt plus generated tokens: everything the KV cache must eventually hold."""
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def num_uncomputed_tokens(self) -> int:
        return self.num_tokens - self.num_computed_tokens

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    def token_ids_between(self, start: int, end: int) -> list[int]:
        """Tokens [start, end) of prompt + output (for prefill chunks and recompute)."""
        prompt_len = len(self.prompt_token_ids)
        if end <= prompt_len:
            return self.prompt_token_ids[start:end]
        if start >= prompt_len:
            return self.output_token_ids[start - prompt_len : end - prompt_len]
        return self.prompt_token_ids[start:] + self.output_token_ids[: end - prompt_len]
