"""Per-request sampling and stopping parameters, and their range checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import InvalidParameter

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0  # nucleus mass kept, in (0, 1]
    top_k: int = 0  # 0 or -1 = off; 1 = greedy
    seed: int | None = None  # per-request generator: same tokens whatever the batch
    max_tokens: int = 16  # most tokens generated
    min_tokens: int = 0  # EOS and stop_token_ids are masked until this many are generated
    stop_token_ids: tuple[int, ...] = ()  # finish (STOP) after generating one of these
    ignore_eos: bool = False  # keep generating past EOS

    @property
    def is_greedy(self) -> bool:
        """Argmax sampling: temperature 0, or top-k with k = 1."""
        return self.temperature == 0.0 or self.top_k == 1

    @property
    def uses_top_k(self) -> bool:
        return self.top_k > 1

    @property
    def uses_top_p(self) -> bool:
        return self.top_p < 1.0

    def validate(self, vocab_size: int) -> None:
        """Raise InvalidParameter naming the first field out of range."""
        _check(
            math.isfinite(self.temperature) and 0.0 <= self.temperature <= MAX_TEMPERATURE,
            "temperature",
            f"temperature must be in [0, {MAX_TEMPERATURE}], got {self.temperature}",
        )
        _check(0.0 < self.top_p <= 1.0, "top_p", f"top_p must be in (0, 1], got {self.top_p}")
        _check(self.top_k >= -1, "top_k", f"top_k must be -1, 0 or >= 1, got {self.top_k}")
        _check(
            self.max_tokens >= 1, "max_tokens", f"max_tokens must be >= 1, got {self.max_tokens}"
        )
        _check(
            0 <= self.min_tokens <= self.max_tokens,
            "min_tokens",
            f"min_tokens must be in [0, max_tokens={self.max_tokens}], got {self.min_tokens}",
        )
        bad = [t for t in self.stop_token_ids if not 0 <= t < vocab_size]
        _check(
            not bad,
            "stop_token_ids",
            f"stop token id {bad[0] if bad else None} is outside the vocabulary [0, {vocab_size})",
        )
        _check(
            self.seed is None or INT64_MIN <= self.seed <= INT64_MAX,
            "seed",
            f"seed must fit in a signed 64-bit integer, got {self.seed}",
        )


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise InvalidParameter(field, message)
