"""Logprobs of chosen tokens, their ranks, the top alternatives and requested ids, for a
batch of positions at once (one top-k, one gather, one host transfer); and the prompt
logprobs a request collects over its prefill chunks."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.outputs import PositionLogprobs, TokenLogprob

RANK_PASSES = 16  # requested ids ranked by comparison passes up to this many, else a sort


def position_logprobs(
    logprobs: torch.Tensor,
    chosen: torch.Tensor,
    num_top: Sequence[int],
    requested: Sequence[Sequence[int]],
) -> list[PositionLogprobs]:
    """logprobs [R, V] (log_softmax rows), chosen [R] token ids; per row the number of top
    alternatives and the ids whose logprobs are requested. Ranks: 1 + the number of tokens
    strictly more likely (the top list's ranks are its positions)."""
    if logprobs.shape[0] == 0:
        return []
    chosen = chosen.to(logprobs.device).unsqueeze(1)
    chosen_values = logprobs.gather(1, chosen)
    ranks = (logprobs > chosen_values).sum(dim=-1) + 1
    k = min(max(num_top, default=0), logprobs.shape[-1])
    top_values, top_ids = logprobs.topk(k, dim=-1) if k > 0 else (logprobs[:, :0], chosen[:, :0])
    width = max((len(r) for r in requested), default=0)
    wanted = torch.tensor(
        [list(r) + [0] * (width - len(r)) for r in requested], dtype=torch.int64
    ).reshape(len(requested), width)
    wanted_values = logprobs.gather(1, wanted.to(logprobs.device))
    wanted_ranks = _ranks(logprobs, wanted_values) if width else wanted_values
    host = [
        t.tolist()
        for t in (chosen, chosen_values, ranks, top_ids, top_values, wanted_values, wanted_ranks)
    ]
    return [_position(row, num_top[row], requested[row], host) for row in range(len(num_top))]


def _ranks(logprobs: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """1 + the number of entries of each row strictly greater than each of `values` [R, W]:
    one comparison pass per requested id, or one sort of the rows when there are many."""
    if values.shape[1] <= RANK_PASSES:
        return torch.stack([(logprobs > v.unsqueeze(1)).sum(-1) for v in values.T], 1) + 1
    ascending_negated = (-logprobs).sort(dim=-1).values
    return torch.searchsorted(ascending_negated, -values, side="left") + 1


def _position(
    row: int, num_top: int, requested: Sequence[int], host: list[list]
) -> PositionLogprobs:
    chosen, chosen_values, ranks, top_ids, top_values, wanted_values, wanted_ranks = host
    return PositionLogprobs(
        chosen=TokenLogprob(chosen[row][0], chosen_values[row][0], ranks[row]),
        top=[
            TokenLogprob(token_id, value, rank)
            for rank, (token_id, value) in enumerate(
                zip(top_ids[row][:num_top], top_values[row][:num_top], strict=True), start=1
            )
        ],
        requested=[
            TokenLogprob(token_id, value, int(rank))
            for token_id, value, rank in zip(
                requested, wanted_values[row], wanted_ranks[row], strict=False
            )
        ],
    )


class PromptLogprobs:
    """Per request: the prompt logprobs computed so far (prefill chunks arrive in order;
    a recompute after preemption does not add them twice)."""

    def __init__(self) -> None:
        self._collected: dict[str, list[PositionLogprobs | None]] = {}

    def add(
        self,
        request_id: str,
        first_position: int,
        logits: torch.Tensor,
        prompt_token_ids: Sequence[int],
        num_top: int,
        requested: Sequence[int],
    ) -> None:
        """logits [k, V] at prompt positions first_position .. first_position + k - 1; each
        predicts the prompt token after it."""
        entries = self._collected.setdefault(request_id, [None])
        skip = len(entries) - 1 - first_position  # positions already collected
        if skip >= logits.shape[0]:
            return
        logits = logits[max(skip, 0) :]
        start = first_position + max(skip, 0)
        targets = torch.tensor(prompt_token_ids[start + 1 : start + 1 + logits.shape[0]])
        rows = logits.shape[0]
        entries += position_logprobs(
            logits.log_softmax(dim=-1), targets, [num_top] * rows, [requested] * rows
        )

    def pop(self, request_id: str, num_prompt_tokens: int) -> list[PositionLogprobs | None]:
        entries = self._collected.pop(request_id, [None])
        assert len(entries) == num_prompt_tokens, "every prompt position was computed"
        return entries

    def discard(self, request_id: str) -> None:
        self._collected.pop(request_id, None)
