"""Protobuf PositionLogprobs -> OpenAI's logprobs shapes: completions' {tokens,
token_logprobs, top_logprobs, text_offset}, chat's {content: [{token, logprob, bytes,
top_logprobs}]}, and vLLM's prompt_logprobs. JSON has no -inf: it becomes -9999.0.
Ids asked for with logprob_token_ids join the top alternatives."""

from __future__ import annotations

import math
from collections.abc import Sequence

from protoserve.common.v1 import output_pb2

FLOOR = -9999.0


def clamp(value: float) -> float:
    return FLOOR if math.isnan(value) or value < FLOOR else value


def completion_logprobs(
    entries: Sequence[output_pb2.PositionLogprobs],
    text_offset: int = 0,
    num_prompt_entries: int = 0,
) -> dict:
    """`entries`: echoed prompt entries (the first has no logprob) then output entries;
    offsets are running sums of the token strings' lengths from `text_offset`."""
    out: dict[str, list] = {
        "tokens": [],
        "token_logprobs": [],
        "top_logprobs": [],
        "text_offset": [],
    }
    for index, entry in enumerate(entries):
        token = entry.chosen.token
        first_prompt_token = num_prompt_entries and index == 0
        out["tokens"].append(token)
        out["token_logprobs"].append(None if first_prompt_token else clamp(entry.chosen.logprob))
        out["top_logprobs"].append(None if first_prompt_token else _top_dict(entry))
        out["text_offset"].append(text_offset)
        text_offset += len(token)
    return out


def _top_dict(entry: output_pb2.PositionLogprobs) -> dict[str, float]:
    """The chosen token first, then the most likely (up to N + 1 entries), as vLLM."""
    top = {entry.chosen.token: clamp(entry.chosen.logprob)}
    for item in [*entry.top, *entry.requested]:
        top.setdefault(item.token, clamp(item.logprob))
    return top


def chat_logprobs(entries: Sequence[output_pb2.PositionLogprobs]) -> dict:
    return {"content": [_chat_token(e) for e in entries], "refusal": None}


def _chat_token(entry: output_pb2.PositionLogprobs) -> dict:
    alternatives = [*entry.top]
    seen = {t.token_id for t in alternatives}
    alternatives += [t for t in entry.requested if t.token_id not in seen]
    return {**_token(entry.chosen), "top_logprobs": [_token(t) for t in alternatives]}


def _token(item: output_pb2.TokenLogprob) -> dict:
    return {"token": item.token, "logprob": clamp(item.logprob), "bytes": list(item.token_bytes)}


def prompt_logprobs(entries: Sequence[output_pb2.PositionLogprobs]) -> list[dict | None]:
    """vLLM's shape: per prompt token {token_id: {logprob, rank, decoded_token}} (the
    actual token and the top ones); the first entry None."""
    out: list[dict | None] = []
    for index, entry in enumerate(entries):
        if index == 0:
            out.append(None)
            continue
        position = {}
        for item in [entry.chosen, *entry.top, *entry.requested]:
            position.setdefault(
                str(item.token_id),
                {"logprob": clamp(item.logprob), "rank": item.rank, "decoded_token": item.token},
            )
        out.append(position)
    return out
