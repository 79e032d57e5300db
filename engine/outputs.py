"""What the engine hands back: per-step request outputs and engine stats."""

from __future__ import annotations

from dataclasses import dataclass

from engine.request import FinishReason


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
