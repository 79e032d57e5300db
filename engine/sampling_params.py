"""Per-request sampling and stopping parameters, and their range checks.

Every feature has a neutral default that costs nothing in the sampler: a request that
leaves a field at its default never makes the sampler build that feature's tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import InvalidParameter
from engine.structured.spec import StructuredOutputSpec

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
MAX_TEMPERATURE = 2.0
MAX_PENALTY = 2.0  # presence and frequency penalties lie in [-MAX_PENALTY, MAX_PENALTY]
MAX_LOGIT_BIAS = 100.0  # biases are clamped to [-MAX_LOGIT_BIAS, MAX_LOGIT_BIAS]
MAX_BAD_WORDS = 128  # token sequences (VLLM_MAX_NUM_BAD_WORDS)
MAX_LOGPROB_TOKEN_IDS = 128
ALL_TOKENS = -1  # logprobs / prompt_logprobs: the whole vocabulary


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0  # nucleus mass kept, in (0, 1]
    top_k: int = 0  # 0 or -1 = off; 1 = greedy
    min_p: float = 0.0  # drop tokens with p < min_p * p_max
    seed: int | None = None  # per-request generator: same tokens whatever the batch
    max_tokens: int = 16  # most tokens generated
    min_tokens: int = 0  # EOS and stop_token_ids are masked until this many are generated
    stop_token_ids: tuple[int, ...] = ()  # finish (STOP) after generating one of these
    ignore_eos: bool = False  # keep generating past EOS
    # Penalties: presence/frequency subtract over the generated tokens; repetition divides
    # positive logits (multiplies negative ones) of tokens seen in prompt or output.
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) added to the logits
    allowed_token_ids: tuple[int, ...] | None = None  # only these can be sampled
    # Token sequences the output must not complete: the last token of a sequence is banned
    # where the output ends with the rest of it (a one-token sequence is always banned).
    bad_words_token_ids: tuple[tuple[int, ...], ...] = ()
    # Logprobs are log_softmax of the model's raw logits (before any processing: penalties,
    # bias, masks, temperature), as vLLM's default "raw_logprobs" mode. None = not computed;
    # N = the chosen token plus the N most likely ones; -1 = the whole vocabulary.
    logprobs: int | None = None
    prompt_logprobs: int | None = None  # the same for every prompt position after the first
    logprob_token_ids: tuple[int, ...] = ()  # logprobs of exactly these ids at each position
    structured_output: StructuredOutputSpec | None = None  # grammar the output must match
    # Beam search of beam_width beams instead of sampling; beams are ranked by cumulative
    # logprob / generated_length ** length_penalty (of the processed distribution).
    use_beam_search: bool = False
    beam_width: int = 1
    length_penalty: float = 1.0

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

    @property
    def uses_min_p(self) -> bool:
        return self.min_p > 0.0

    @property
    def uses_penalties(self) -> bool:
        return (
            self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
            or self.repetition_penalty != 1.0
        )

    def num_logprobs(self, vocab_size: int) -> int:
        """Alternatives per position (0 when logprobs are off or only the chosen one)."""
        if self.logprobs is None:
            return 0
        return vocab_size if self.logprobs == ALL_TOKENS else self.logprobs

    def validate(self, vocab_size: int) -> None:
        """Raise InvalidParameter naming the first field out of range."""
        self._validate_sampling()
        self._validate_stopping(vocab_size)
        self._validate_token_ids(vocab_size)
        self._validate_outputs(vocab_size)

    def _validate_sampling(self) -> None:
        _check(
            math.isfinite(self.temperature) and 0.0 <= self.temperature <= MAX_TEMPERATURE,
            "temperature",
            f"temperature must be in [0, {MAX_TEMPERATURE}], got {self.temperature}",
        )
        _check(0.0 < self.top_p <= 1.0, "top_p", f"top_p must be in (0, 1], got {self.top_p}")
        _check(self.top_k >= -1, "top_k", f"top_k must be -1, 0 or >= 1, got {self.top_k}")
        _check(0.0 <= self.min_p <= 1.0, "min_p", f"min_p must be in [0, 1], got {self.min_p}")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            _check(
                -MAX_PENALTY <= value <= MAX_PENALTY,
                name,
                f"{name} must be in [-{MAX_PENALTY}, {MAX_PENALTY}], got {value}",
            )
        _check(
            math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0.0,
            "repetition_penalty",
            f"repetition_penalty must be a finite number > 0, got {self.repetition_penalty}",
        )
        _check(
            self.seed is None or INT64_MIN <= self.seed <= INT64_MAX,
            "seed",
            f"seed must fit in a signed 64-bit integer, got {self.seed}",
        )
        _check(self.beam_width >= 1, "n", f"the beam width must be >= 1, got {self.beam_width}")
        _check(
            math.isfinite(self.length_penalty),
            "length_penalty",
            f"length_penalty must be finite, got {self.length_penalty}",
        )

    def _validate_stopping(self, vocab_size: int) -> None:
        _check(
            self.max_tokens >= 1, "max_tokens", f"max_tokens must be >= 1, got {self.max_tokens}"
        )
        _check(
            0 <= self.min_tokens <= self.max_tokens,
            "min_tokens",
            f"min_tokens must be in [0, max_tokens={self.max_tokens}], got {self.min_tokens}",
        )
        _check_vocab(self.stop_token_ids, vocab_size, "stop_token_ids", "stop token id")

    def _validate_token_ids(self, vocab_size: int) -> None:
        _check_vocab([t for t, _ in self.logit_bias], vocab_size, "logit_bias", "logit_bias key")
        for token_id, bias in self.logit_bias:
            _check(math.isfinite(bias), "logit_bias", f"logit_bias of {token_id} is not finite")
        if self.allowed_token_ids is not None:
            _check(
                len(self.allowed_token_ids) > 0,
                "allowed_token_ids",
                "allowed_token_ids must not be empty",
            )
            _check(
                all(0 <= t < vocab_size for t in self.allowed_token_ids),
                "allowed_token_ids",
                "allowed_token_ids contains out-of-vocab token id!",
            )
        _check(
            len(self.bad_words_token_ids) <= MAX_BAD_WORDS,
            "bad_words",
            f"at most {MAX_BAD_WORDS} bad word token sequences, got "
            f"{len(self.bad_words_token_ids)}",
        )
        for sequence in self.bad_words_token_ids:
            _check(len(sequence) > 0, "bad_words", "bad_words must not be empty")
            _check_vocab(sequence, vocab_size, "bad_words", "bad word token id")

    def _validate_outputs(self, vocab_size: int) -> None:
        for name in ("logprobs", "prompt_logprobs"):
            value = getattr(self, name)
            _check(
                value is None or value >= ALL_TOKENS,
                name,
                f"{name} must be >= 0 or -1 (the whole vocabulary), got {value}",
            )
        if self.logprob_token_ids:
            _check(
                self.logprobs is not None,
                "logprob_token_ids",
                "logprob_token_ids requires logprobs to be set",
            )
            _check(
                len(self.logprob_token_ids) <= MAX_LOGPROB_TOKEN_IDS,
                "logprob_token_ids",
                f"at most {MAX_LOGPROB_TOKEN_IDS} logprob_token_ids, "
                f"got {len(self.logprob_token_ids)}",
            )
            _check_vocab(self.logprob_token_ids, vocab_size, "logprob_token_ids", "token id")
            _check(
                not self.use_beam_search,
                "logprob_token_ids",
                "logprob_token_ids is not supported with beam search",
            )
        if self.use_beam_search:
            _check(
                self.prompt_logprobs is None,
                "prompt_logprobs",
                "prompt_logprobs is not supported with beam search",
            )
            _check(
                self.structured_output is None,
                "use_beam_search",
                "beam search is not supported with structured outputs",
            )


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise InvalidParameter(field, message)


def _check_vocab(token_ids, vocab_size: int, field: str, what: str) -> None:
    bad = [t for t in token_ids if not 0 <= t < vocab_size]
    _check(not bad, field, f"{what} {bad[0] if bad else None} is outside the vocabulary "
           f"[0, {vocab_size})")  # fmt: skip
