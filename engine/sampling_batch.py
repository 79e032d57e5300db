"""The step's sampling parameters as batch tensors, built once per step from the sampling
sequences. Every feature is None (or empty) when no row uses it, so a step pays only for
the features its requests ask for."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.scheduler_output import ScheduledSequence


@dataclass(frozen=True)
class Penalties:
    """One entry per (row, token) pair: every distinct token of a penalised row's prompt
    and output (see token_history.py)."""

    rows: torch.Tensor  # [M] logits row
    tokens: torch.Tensor  # [M] token id
    output_counts: torch.Tensor  # [M] occurrences in the output
    repetition: torch.Tensor  # [M] the row's penalties
    frequency: torch.Tensor  # [M]
    presence: torch.Tensor  # [M]


@dataclass(frozen=True)
class SamplingBatch:
    num_rows: int
    greedy: list[bool]
    all_greedy: bool  # no row samples (beam rows count as greedy here)
    temperature: torch.Tensor | None  # [N, 1]; 1.0 on greedy rows; None when all greedy
    top_k: torch.Tensor | None  # [N] int64, vocab size where off
    max_top_k: int  # the largest k in use (0 when top_k is None)
    top_p: torch.Tensor | None  # [N] float, 1.0 where off
    min_p: torch.Tensor | None  # [N] float, 0.0 where off
    penalties: Penalties | None
    banned: tuple[torch.Tensor, torch.Tensor] | None  # (rows, cols) set to -inf
    bias: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # (rows, cols, values)
    allowed: tuple[torch.Tensor, torch.Tensor] | None  # (rows [R], masks [R, V] bool)
    grammar_rows: list[int]  # rows constrained by a grammar
    logprob_rows: list[int]  # rows that return logprobs
    beam_rows: list[int]  # beam-search rows: candidates instead of a token
    seeded_rows: list[tuple[int, torch.Generator]]

    @property
    def needs_processing(self) -> bool:
        return bool(self.penalties or self.banned or self.bias or self.allowed or self.grammar_rows)


def banned_tokens(seq: ScheduledSequence, eos_token_ids: tuple[int, ...]) -> list[int]:
    """Tokens this row cannot take now: EOS (unless ignore_eos) and stop ids below
    min_tokens; the last token of every bad word whose other tokens end the output."""
    params = seq.sampling_params
    banned: set[int] = set()
    if seq.num_output_tokens < params.min_tokens:
        banned.update(params.stop_token_ids)
        if not params.ignore_eos:
            banned.update(eos_token_ids)
    output = seq.output_token_ids
    for word in params.bad_words_token_ids:
        prefix = word[:-1]
        if not prefix or (
            len(output) >= len(prefix) and tuple(output[len(output) - len(prefix) :]) == prefix
        ):
            banned.add(word[-1])
    return sorted(banned)


def tensor(values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)
