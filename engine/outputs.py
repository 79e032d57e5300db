"""What the engine hands back: per-step request outputs (with logprobs), finished beams,
and engine stats."""

from __future__ import annotations

from dataclasses import dataclass

from engine.request import FinishReason


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    logprob: float  # may be -inf
    rank: int  # 1 = the most likely token at this position


@dataclass(frozen=True)
class PositionLogprobs:
    """Logprobs at one position: log_softmax of the model's raw logits (see
    SamplingParams.logprobs), except for beam search (the distribution it searched)."""

    chosen: TokenLogprob  # the sampled (or, for a prompt, the actual) token
    top: list[TokenLogprob]  # the most likely tokens, most likely first
    requested: list[TokenLogprob]  # exactly SamplingParams.logprob_token_ids, in order


@dataclass(frozen=True)
class BeamSequence:
    """One finished beam of a beam-search request."""

    token_ids: list[int]
    cumulative_logprob: float
    score: float  # cumulative_logprob / len(token_ids without a final EOS) ** length_penalty
    finish_reason: FinishReason
    stop_token_id: int | None  # the EOS / stop token that ended it, if any
    logprobs: list[PositionLogprobs] | None  # with SamplingParams.logprobs


@dataclass(frozen=True)
class RequestOutput:
    request_id: str
    new_token_ids: list[int]  # produced this step: usually one; empty on an abort message
    finished: bool
    finish_reason: FinishReason | None  # set when finished
    stop_token_id: int | None  # the EOS / stop token id that finished it, if any
    num_prompt_tokens: int
    num_cached_tokens: int  # prompt tokens served from the prefix cache (first admission)
    num_output_tokens: int  # cumulative
    # One entry per new token, with SamplingParams.logprobs set.
    logprobs: list[PositionLogprobs] | None = None
    # On the request's first output, with SamplingParams.prompt_logprobs set: one entry per
    # prompt token, the first None (nothing predicts it).
    prompt_logprobs: list[PositionLogprobs | None] | None = None
    # Beam search: the final output carries the best beams, best first (no new tokens).
    beams: list[BeamSequence] | None = None


@dataclass(frozen=True)
class EngineStats:
    num_running: int
    num_waiting: int  # includes preempted requests waiting to be recomputed
    num_kv_blocks_total: int
    num_kv_blocks_free: int  # held by no request; cached blocks included (evictable)
    block_size: int
    num_kv_blocks_cached: int = 0  # of the free blocks, those still holding a cached prefix
    # Cumulative counters:
    prefix_cache_queries: int = 0  # tokens of requests looked up at admission (resumes too)
    prefix_cache_hits: int = 0  # of those, tokens found in the prefix cache
    num_tokens_computed: int = 0  # tokens run through the model (prefill chunks + decodes)
    num_preemptions: int = 0  # running requests preempted (to recompute) for lack of blocks
