"""Prompts to token ids: text, token ids or a rendered conversation; truncation;
context-length checks; the generation budget."""

from __future__ import annotations

from dataclasses import dataclass

from protoserve.common.v1 import params_pb2
from service.errors import InvalidArgument
from service.tokenizer import Tokenizer


@dataclass(frozen=True)
class Prompt:
    token_ids: list[int]
    # The prompt as text, when it came as (or was rendered to) text.
    text: str | None = None


def encode_text(
    text: str, tokenizer: Tokenizer, options: params_pb2.PromptOptions, default_special: bool
) -> Prompt:
    if not text:
        raise InvalidArgument("The prompt must not be empty.", field="prompt")
    add_special = (
        options.add_special_tokens if options.HasField("add_special_tokens") else default_special
    )
    return Prompt(tokenizer.encode(text, add_special_tokens=add_special), text)


def from_token_ids(token_ids: list[int], vocab_size: int) -> Prompt:
    if not token_ids:
        raise InvalidArgument("The prompt must not be empty.", field="prompt")
    bad = [t for t in token_ids if t >= vocab_size]
    if bad:
        raise InvalidArgument(
            f"Token id {bad[0]} is out of vocabulary (size {vocab_size}).", field="prompt"
        )
    return Prompt(list(token_ids))


def truncate(
    prompt: Prompt, options: params_pb2.PromptOptions, max_model_len: int, *, pooling: bool = False
) -> Prompt:
    """Apply truncate_prompt_tokens; generation keeps the last tokens by default."""
    if not options.HasField("truncate_prompt_tokens"):
        return prompt
    limit = options.truncate_prompt_tokens
    if limit < -1:
        raise InvalidArgument("truncate_prompt_tokens must be >= -1.", "truncate_prompt_tokens")
    if limit > max_model_len:
        raise InvalidArgument(
            f"truncate_prompt_tokens value ({limit}) is greater than max_model_len "
            f"({max_model_len}). Please request a smaller truncation size.",
            "truncate_prompt_tokens",
        )
    if limit == -1:
        limit = max_model_len if pooling else max_model_len - 1
    if len(prompt.token_ids) <= limit:
        return prompt
    side = options.truncation_side
    keep_first = side == params_pb2.TRUNCATION_SIDE_RIGHT or (
        side == params_pb2.TRUNCATION_SIDE_UNSPECIFIED and pooling
    )
    ids = prompt.token_ids[:limit] if keep_first else prompt.token_ids[-limit:]
    return Prompt(ids, None)


def check_context(num_prompt_tokens: int, max_model_len: int) -> None:
    if num_prompt_tokens >= max_model_len:
        raise InvalidArgument(
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"prompt contains {num_prompt_tokens} input tokens. Please reduce the length of "
            "the input prompt.",
            field="input_tokens",
        )


def generation_budget(
    stopping: params_pb2.StoppingParams,
    default: int | None,
    num_prompt_tokens: int,
    max_model_len: int,
) -> int:
    """max_tokens as requested (or `default`; None = the whole remaining context),
    clamped to the remaining context."""
    remaining = max_model_len - num_prompt_tokens
    if not stopping.HasField("max_tokens"):
        return remaining if default is None else min(default, remaining)
    requested = stopping.max_tokens
    if requested < 1:
        raise InvalidArgument(f"max_tokens must be at least 1, got {requested}.", "max_tokens")
    if requested > max_model_len:
        raise InvalidArgument(
            f"`max_tokens={requested}` cannot be greater than `max_model_len={max_model_len}`.",
            "max_tokens",
        )
    return min(requested, remaining)
