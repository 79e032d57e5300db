"""What the penalties need to know of each request's tokens, kept sparse and updated
incrementally: per request the distinct tokens of its prompt and output (first-seen
order) and how often each occurs in the output. A step's penalties then touch only
those (row, token) pairs, never a [rows, vocab] tensor. Only requests that use penalties
are tracked.

A request's entry catches up from its own token list (the scheduler's), so preemption,
recompute and beam forks need no bookkeeping here: a new id starts from its full list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class _Seen:
    tokens: list[int] = field(default_factory=list)  # distinct, prompt then output
    counts: list[int] = field(default_factory=list)  # occurrences in the output, aligned
    position: dict[int, int] = field(default_factory=dict)  # token -> index in tokens
    num_output_seen: int = 0

    def add(self, token: int, count: int) -> None:
        index = self.position.get(token)
        if index is None:
            self.position[token] = len(self.tokens)
            self.tokens.append(token)
            self.counts.append(count)
        else:
            self.counts[index] += count


@dataclass(frozen=True)
class SeenPairs:
    """The (row, token) pairs of a step's penalty rows; rows index the rows given."""

    rows: torch.Tensor  # [M] int64
    tokens: torch.Tensor  # [M] int64
    output_counts: torch.Tensor  # [M] occurrences in the output (0: prompt only)
    lengths: torch.Tensor  # [R] pairs per row


class TokenHistory:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._seen: dict[str, _Seen] = {}

    def remove(self, request_id: str) -> None:
        self._seen.pop(request_id, None)

    def sync(
        self,
        request_ids: Sequence[str],
        prompts: Sequence[Sequence[int]],
        outputs: Sequence[Sequence[int]],
    ) -> SeenPairs:
        """Bring these requests up to date with their tokens; their pairs, row by row."""
        tokens: list[int] = []
        counts: list[int] = []
        lengths: list[int] = []
        for request_id, prompt, output in zip(request_ids, prompts, outputs, strict=True):
            seen = self._seen.get(request_id)
            if seen is None:
                seen = self._seen[request_id] = _Seen()
                for token in prompt:
                    seen.add(token, 0)
            for token in output[seen.num_output_seen :]:
                seen.add(token, 1)
            seen.num_output_seen = len(output)
            tokens += seen.tokens
            counts += seen.counts
            lengths.append(len(seen.tokens))
        length_tensor = self._tensor(lengths)
        rows = torch.repeat_interleave(
            torch.arange(len(lengths), device=self.device), length_tensor
        )
        return SeenPairs(rows, self._tensor(tokens), self._tensor(counts), length_tensor)

    def _tensor(self, values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.int64).to(self.device, non_blocking=True)
