"""The contract between scheduler and runner: what one step computes, per sequence.

The runner and sampler read only these dataclasses, never Request objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.sampling_params import SamplingParams


@dataclass(frozen=True)
class ScheduledSequence:
    """One request's share of a step: everything the runner and sampler may know of it."""

    request_id: str
    # Tokens whose K/V this step computes, at positions start_position, start_position + 1, ...
    token_ids: list[int]
    # Tokens of this request already in the KV cache (its context before this step):
    # computed by earlier steps or found in the prefix cache.
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
    # The request's prompt and generated tokens (the request's own lists: read, never
    # mutate). The sampler reads them for penalties and bad words, the engine for prompt
    # logprobs.
    prompt_token_ids: Sequence[int] = ()
    output_token_ids: Sequence[int] = ()
    # The runner also returns the logits of this chunk's prompt positions (each predicts the
    # next prompt token), after the sampling rows: see SchedulerOutput.prompt_logits_spans.
    wants_prompt_logits: bool = False

    @property
    def num_new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def prompt_logits_positions(self) -> range:
        """Positions of this chunk whose logits predict a prompt token (when wanted)."""
        if not self.wants_prompt_logits:
            return range(0)
        return range(self.start_position, min(self.context_len, len(self.prompt_token_ids) - 1))

    @property
    def context_len(self) -> int:
        """Tokens in the cache once this step has written its K/V."""
        return self.start_position + len(self.token_ids)


@dataclass(frozen=True)
class SchedulerOutput:
    """The contract between scheduler and runner for one step."""

    # Batch order: running requests, then newly admitted ones, each in policy rank order.
    sequences: list[ScheduledSequence]
    # Requests preempted this step: blocks released, waiting to be recomputed (logs/tests).
    preempted_request_ids: list[str]
    # (source, destination) KV blocks the runner copies before the forward pass: a sequence
    # about to write into a block it shares (beam search forks) gets its own copy first.
    blocks_to_copy: list[tuple[int, int]] = field(default_factory=list)

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

    @property
    def prompt_logits_spans(self) -> list[tuple[ScheduledSequence, range]]:
        """Sequences whose prompt logits the runner returns, with their positions, in the
        order their rows follow the sampling rows."""
        spans = [(s, s.prompt_logits_positions) for s in self.sequences]
        return [(s, positions) for s, positions in spans if len(positions)]
