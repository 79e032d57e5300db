"""What the benchmarks send: requests of random token ids with prompt lengths drawn
uniformly from a range and a fixed output length, seeded; Poisson arrival gaps; and text
prompts that tokenize to exactly the intended ids (for servers that only take text)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchRequest:
    prompt_ids: list[int]
    output_len: int

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_ids)


@dataclass(frozen=True)
class WorkloadSpec:
    num_requests: int = 64
    min_prompt_len: int = 64
    max_prompt_len: int = 512  # inclusive
    output_len: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_requests < 1 or self.output_len < 1:
            raise ValueError("num_requests and output_len must be at least 1")
        if not 1 <= self.min_prompt_len <= self.max_prompt_len:
            raise ValueError(
                f"need 1 <= min_prompt_len <= max_prompt_len, got "
                f"{self.min_prompt_len}..{self.max_prompt_len}"
            )

    def for_run(self, run: int) -> WorkloadSpec:
        """The same shape with a different seed: each repeat gets fresh prompts, so no run
        is served from a prefix cache that an earlier run filled."""
        return WorkloadSpec(
            self.num_requests, self.min_prompt_len, self.max_prompt_len, self.output_len,
            self.seed + 1000 * run,
        )  # fmt: skip


def sample_requests(spec: WorkloadSpec, token_ids: Sequence[int]) -> list[BenchRequest]:
    """`spec.num_requests` requests whose prompts are drawn from `token_ids` (e.g. the
    vocabulary without special tokens); deterministic for a given spec."""
    if not token_ids:
        raise ValueError("no token ids to draw prompts from")
    rng = random.Random(spec.seed)
    requests = []
    for _ in range(spec.num_requests):
        length = rng.randint(spec.min_prompt_len, spec.max_prompt_len)
        requests.append(BenchRequest(rng.choices(token_ids, k=length), spec.output_len))
    return requests


def random_ids(token_ids: Sequence[int], length: int, seed: int) -> list[int]:
    return random.Random(seed).choices(token_ids, k=length)


def poisson_gaps(num_requests: int, request_rate: float, seed: int) -> list[float]:
    """Seconds to wait before each request: exponential gaps of mean 1/rate (a Poisson
    process); all zeros for rate inf (everything at once). The first gap is 0."""
    if request_rate <= 0:
        raise ValueError(f"request_rate must be > 0 (or inf), got {request_rate}")
    if math.isinf(request_rate):
        return [0.0] * num_requests
    rng = random.Random(seed)
    return [0.0] + [rng.expovariate(request_rate) for _ in range(num_requests - 1)]


def prompt_token_ids(vocab_size: int, special_ids: Sequence[int]) -> list[int]:
    """The ids prompts are drawn from: the vocabulary less its special tokens."""
    special = set(special_ids)
    return [i for i in range(vocab_size) if i not in special]


class TextPrompts:
    """Text prompts for servers that take text: each prompt is a string of words, every
    word one token on its own, so the server's tokenizer yields exactly the ids drawn.
    `words` maps the token ids used to their text (" word")."""

    def __init__(self, words: dict[int, str]) -> None:
        if not words:
            raise ValueError("no single-token words in this vocabulary")
        self.words = words

    @property
    def token_ids(self) -> list[int]:
        return sorted(self.words)

    def text(self, ids: Sequence[int]) -> str:
        return "".join(self.words[i] for i in ids)

    @classmethod
    def from_tokenizer(cls, tokenizer, limit: int = 4096) -> TextPrompts:
        """Pick vocabulary entries " <letters>" that encode back to themselves, alone and
        after another word (a `tokenizers.Tokenizer`; no torch needed)."""
        words: dict[int, str] = {}
        for token, token_id in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
            if not (token.startswith("Ġ") and token[1:].isascii() and token[1:].isalpha()):
                continue
            text = " " + token[1:]
            if tokenizer.encode(text, add_special_tokens=False).ids == [token_id]:
                words[token_id] = text
            if len(words) >= limit:
                break
        prompts = cls(words)
        prompts.check(tokenizer)
        return prompts

    def check(self, tokenizer, samples: int = 8, length: int = 64) -> None:
        """Word sequences round-trip (no merge across the spaces)."""
        ids = self.token_ids
        for seed in range(samples):
            drawn = random_ids(ids, length, seed)
            got = tokenizer.encode(self.text(drawn), add_special_tokens=False).ids
            if got != drawn:
                raise ValueError("text prompts do not tokenize back to their ids")


def load_tokenizer(model_dir):
    """The model's `tokenizers.Tokenizer` (tokenizer.json; no torch, no transformers)."""
    from pathlib import Path

    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))


def model_prompt_ids(model_dir) -> list[int]:
    """Ids a prompt may hold: the model's vocabulary (as far as the tokenizer covers it)
    less the special tokens."""
    import json
    from pathlib import Path

    tokenizer = load_tokenizer(model_dir)
    config = json.loads((Path(model_dir) / "config.json").read_text())
    vocab = min(int(config["vocab_size"]), tokenizer.get_vocab_size())
    specials = [i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special]
    return prompt_token_ids(vocab, specials)
