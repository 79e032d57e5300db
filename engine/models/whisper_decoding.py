"""Whisper's decoding rules, applied to the logits of a step's sampling rows before the
sampler: what transformers' Whisper `generate` applies as logits processors.

- forced tokens right after the prompt (language, task, <|notimestamps|>); `LANGUAGE`
  forces the most likely language token (detection, as `detect_language`: argmax of the
  raw logits over the language tokens);
- `suppress_tokens` always, `begin_suppress_tokens` at the first free token;
- with timestamps (WhisperTimeStampLogitsProcessor): <|notimestamps|> never; timestamps in
  pairs except before EOS; never decreasing; the first free token a timestamp at most
  `max_initial_timestamp_index`; a timestamp whenever their total probability beats every
  text token.

The masks are batched tensor operations; only the per-row facts of the timestamp rule are
read on the host from the request's tokens (as transformers does)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

LANGUAGE = -1  # in WhisperDecoding.forced: the detected language's token
NEG_INF = float("-inf")


@dataclass(frozen=True)
class TimestampRules:
    timestamp_begin: int  # id of <|0.00|>; every later id is a timestamp
    no_timestamps_token_id: int
    eos_token_id: int  # ids below it are text tokens
    max_initial_timestamp_index: int | None = None


@dataclass(frozen=True)
class WhisperDecoding:
    """One request's rules (built by the service from generation_config.json)."""

    prompt_len: int  # decoder prompt tokens (previous text, <|startoftranscript|>, ...)
    forced: tuple[int, ...] = ()  # the first generated tokens; LANGUAGE = detect it
    language_ids: tuple[int, ...] = ()  # the candidates for LANGUAGE
    suppress_tokens: tuple[int, ...] = ()
    begin_suppress_tokens: tuple[int, ...] = ()
    timestamps: TimestampRules | None = None

    @property
    def begin_index(self) -> int:
        """Position of the first freely decoded token."""
        return self.prompt_len + len(self.forced)


@dataclass(frozen=True)
class DecodeRow:
    """A sampling row: its request's rules and decoder tokens at positions 0 ..
    context_len - 1 (the list may run longer while a preempted request recomputes)."""

    decoding: WhisperDecoding
    tokens: list[int]
    context_len: int


def apply(logits: torch.Tensor, rows: list[DecodeRow | None]) -> None:
    """Constrain logits [N, V] (row i is rows[i]; None = no rules) in place."""
    forced, free = [], []
    for index, row in enumerate(rows):
        if row is None:
            continue
        step = row.context_len - row.decoding.prompt_len
        (forced if 0 <= step < len(row.decoding.forced) else free).append(index)
    _force(logits, [(i, rows[i]) for i in forced])
    _suppress(logits, [(i, rows[i].decoding.suppress_tokens) for i in free])
    _suppress(
        logits,
        [
            (i, rows[i].decoding.begin_suppress_tokens)
            for i in free
            if rows[i].context_len == rows[i].decoding.begin_index
        ],
    )
    _timestamps(logits, [(i, rows[i]) for i in free if rows[i].decoding.timestamps is not None])


def _force(logits: torch.Tensor, rows: list[tuple[int, DecodeRow]]) -> None:
    """Only the forced token remains (logit 0); LANGUAGE picks the best language token."""
    if not rows:
        return
    device = logits.device
    wanted = [row.decoding.forced[row.context_len - row.decoding.prompt_len] for _, row in rows]
    tokens = torch.tensor(wanted, device=device)
    for k in (k for k, token in enumerate(wanted) if token == LANGUAGE):  # once per request
        index, row = rows[k]
        candidates = torch.tensor(row.decoding.language_ids, device=device)
        tokens[k] = candidates[logits[index, candidates].argmax()]
    indices = torch.tensor([i for i, _ in rows], device=device)
    logits[indices] = NEG_INF
    logits[indices, tokens] = 0.0


def _suppress(logits: torch.Tensor, rows: list[tuple[int, tuple[int, ...]]]) -> None:
    """-inf at each row's token ids; rows sharing a tuple are masked in one operation."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, ids in rows:
        if ids:
            groups[ids].append(index)
    for ids, indices in groups.items():
        r = torch.tensor(indices, device=logits.device).unsqueeze(1)
        logits[r, torch.tensor(ids, device=logits.device).unsqueeze(0)] = NEG_INF


def _timestamps(logits: torch.Tensor, rows: list[tuple[int, DecodeRow]]) -> None:
    if not rows:
        return
    rules = rows[0][1].decoding.timestamps
    assert rules is not None and all(r.decoding.timestamps == rules for _, r in rows)
    facts = [_timestamp_facts(row, rules.timestamp_begin) for _, row in rows]
    device = logits.device
    indices = torch.tensor([i for i, _ in rows], device=device)
    no_timestamp, no_text, floor, initial = (
        torch.tensor(column, device=device).unsqueeze(1) for column in zip(*facts, strict=True)
    )
    sub = logits.index_select(0, indices)
    vocab = torch.arange(sub.shape[-1], device=device).unsqueeze(0)
    is_timestamp = vocab >= rules.timestamp_begin
    sub[:, rules.no_timestamps_token_id] = NEG_INF
    sub.masked_fill_(no_timestamp & is_timestamp, NEG_INF)
    sub.masked_fill_(no_text & (vocab < rules.eos_token_id), NEG_INF)
    sub.masked_fill_(is_timestamp & (vocab < floor), NEG_INF)
    sub.masked_fill_(initial & ~is_timestamp, NEG_INF)
    if rules.max_initial_timestamp_index is not None:
        last_allowed = rules.timestamp_begin + rules.max_initial_timestamp_index
        sub.masked_fill_(initial & (vocab > last_allowed), NEG_INF)
    logprobs = sub.float().log_softmax(dim=-1)
    timestamp_mass = logprobs[:, rules.timestamp_begin :].logsumexp(dim=-1)
    best_text = logprobs[:, : rules.timestamp_begin].max(dim=-1).values
    sub.masked_fill_((timestamp_mass > best_text).unsqueeze(1) & ~is_timestamp, NEG_INF)
    logits.index_copy_(0, indices, sub)


def _timestamp_facts(row: DecodeRow, timestamp_begin: int) -> tuple[bool, bool, int, bool]:
    """(no timestamp next, no text next, lowest allowed timestamp, first free token)."""
    generated = row.tokens[row.decoding.begin_index : row.context_len]
    last_was = len(generated) >= 1 and generated[-1] >= timestamp_begin
    penultimate_was = len(generated) < 2 or generated[-2] >= timestamp_begin
    floor = timestamp_begin
    stamps = [t for t in generated if t >= timestamp_begin]
    if stamps:
        floor = stamps[-1] if last_was and not penultimate_was else stamps[-1] + 1
    return (
        last_was and penultimate_was,
        last_was and not penultimate_was,
        floor,
        row.context_len == row.decoding.begin_index,
    )
