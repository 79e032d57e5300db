"""Pooling inputs to token ids: texts (batched through the tokenizer), token ids,
conversations (chat template, no generation prompt), text pairs for cross-encoders;
truncation that keeps the special tokens; the max_model_len check.

Tokenisation goes through a private copy of the tokenizer's backend with truncation and
padding off: a checkpoint's tokenizer.json may carry its own (all-MiniLM-L6-v2 pads and
cuts to 128), and the transformers wrapper re-applies its settings on every call."""

from __future__ import annotations

from dataclasses import dataclass

import tokenizers

from protoserve.common.v1 import chat_pb2, params_pb2
from protoserve.pooling.v1 import pooling_pb2
from service.chat import ChatRenderSettings, render_prompt
from service.errors import InvalidArgument
from service.tokenizer import Tokenizer


@dataclass(frozen=True)
class Truncation:
    """truncate_prompt_tokens resolved: keep at most `limit` tokens (special ones kept)."""

    limit: int | None  # None: no truncation (an input over max_model_len is refused)
    keep_first: bool = True  # pooling keeps the first tokens unless told otherwise


def truncation_of(options: params_pb2.PromptOptions, max_model_len: int) -> Truncation:
    if not options.HasField("truncate_prompt_tokens"):
        return Truncation(None)
    limit = options.truncate_prompt_tokens
    if limit < -1:
        raise InvalidArgument("truncate_prompt_tokens must be >= -1.", "truncate_prompt_tokens")
    if limit > max_model_len:
        raise InvalidArgument(
            f"truncate_prompt_tokens value ({limit}) is greater than max_model_len "
            f"({max_model_len}). Please request a smaller truncation size.",
            "truncate_prompt_tokens",
        )
    keep_first = options.truncation_side != params_pb2.TRUNCATION_SIDE_LEFT
    return Truncation(max_model_len if limit == -1 else limit, keep_first)


class PoolingTokenizer:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self._backend = tokenizers.Tokenizer.from_str(tokenizer.backend.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()

    def encode_texts(
        self, texts: list[str], add_special_tokens: bool, truncation: Truncation
    ) -> list[list[int]]:
        if truncation.limit is None:
            return [
                e.ids
                for e in self._backend.encode_batch(texts, add_special_tokens=add_special_tokens)
            ]
        special = self._backend.num_special_tokens_to_add(False) if add_special_tokens else 0
        keep = _room(truncation.limit, special)
        out = []
        for encoding in self._backend.encode_batch(texts, add_special_tokens=False):
            if len(encoding) > keep:
                encoding.truncate(keep, direction="right" if truncation.keep_first else "left")
            if add_special_tokens:
                encoding = self._backend.post_process(encoding, None, True)
            out.append(encoding.ids)
        return out

    def encode_pairs(
        self,
        firsts: list[str],
        seconds: list[str],
        truncation: Truncation,
        max_first: int = 0,
        max_second: int = 0,
    ) -> list[tuple[list[int], list[int]]]:
        """(token ids, token type ids) of each text pair with the pair's special tokens.
        Per-side limits first (0 = off); then truncate_prompt_tokens trims the second
        text, then the first."""
        pairs = []
        special = self._backend.num_special_tokens_to_add(True)
        a_all = self._backend.encode_batch(firsts, add_special_tokens=False)
        b_all = self._backend.encode_batch(seconds, add_special_tokens=False)
        for a, b in zip(a_all, b_all, strict=True):
            if max_first and len(a) > max_first:
                a.truncate(max_first)
            if max_second and len(b) > max_second:
                b.truncate(max_second)
            if truncation.limit is not None:
                room = _room(truncation.limit, special)
                if len(a) + len(b) > room:
                    b.truncate(max(room - len(a), 0))
                if len(a) > room:
                    a.truncate(room)
            pair = self._backend.post_process(a, b, True)
            pairs.append((pair.ids, pair.type_ids))
        return pairs


def _room(limit: int, special: int) -> int:
    if limit <= special:
        raise InvalidArgument(
            f"truncate_prompt_tokens ({limit}) leaves no room beside the {special} special tokens.",
            "truncate_prompt_tokens",
        )
    return limit - special


def encode_inputs(
    inputs: list[pooling_pb2.PoolingInput],
    options: pooling_pb2.PoolingOptions,
    tokenizer: PoolingTokenizer,
    chat: ChatRenderSettings,
    max_model_len: int,
    prefix: str = "",
) -> list[list[int]]:
    """Token ids of every input, in order; `prefix` (an input type's prompt) goes before
    each text."""
    if not inputs:
        raise InvalidArgument("The input must not be empty.", "input")
    prompt_options = options.prompt_options
    truncation = truncation_of(prompt_options, max_model_len)
    texts: dict[int, str] = {}
    chats: dict[int, str] = {}
    out: list[list[int]] = [[] for _ in inputs]
    for i, item in enumerate(inputs):
        kind = item.WhichOneof("input")
        if kind == "text":
            texts[i] = prefix + item.text
        elif kind == "token_ids":
            out[i] = _cut(list(item.token_ids.ids), truncation)
        elif kind == "conversation":
            chats[i] = _render(item.conversation, chat)
        else:
            raise InvalidArgument(f"input {i} is empty.", "input")
    for texts_of, default_special in ((texts, True), (chats, False)):
        if texts_of:
            special = _add_special(prompt_options, default_special)
            encoded = tokenizer.encode_texts(list(texts_of.values()), special, truncation)
            for i, ids in zip(texts_of, encoded, strict=True):
                out[i] = ids
    for i, ids in enumerate(out):
        check_length(ids, max_model_len, i)
        if options.HasField("max_input_tokens") and len(ids) > options.max_input_tokens:
            raise InvalidArgument(
                f"Input {i} has {len(ids)} tokens, more than max_input_tokens "
                f"({options.max_input_tokens}), and truncation is off.",
                "max_input_tokens",
            )
    return out


def check_length(ids: list[int], max_model_len: int, index: int = 0) -> None:
    if not ids:
        raise InvalidArgument(f"input {index} is empty.", "input")
    if len(ids) > max_model_len:
        raise InvalidArgument(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {len(ids)} tokens in the input for embedding generation. Please "
            "reduce the length of the input.",
            "input_tokens",
        )


def _add_special(options: params_pb2.PromptOptions, default: bool) -> bool:
    return options.add_special_tokens if options.HasField("add_special_tokens") else default


def _cut(ids: list[int], truncation: Truncation) -> list[int]:
    limit = truncation.limit
    if limit is None or len(ids) <= limit:
        return ids
    return ids[:limit] if truncation.keep_first else ids[-limit:]


def _render(conversation: pooling_pb2.Conversation, chat: ChatRenderSettings) -> str:
    template = chat_pb2.ChatTemplateOptions()
    template.CopyFrom(conversation.template)
    if not template.HasField("add_generation_prompt"):
        template.add_generation_prompt = False
    return render_prompt(list(conversation.messages), template, [], chat)
