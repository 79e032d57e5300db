"""Incremental detokenisation: token ids arrive one step at a time; text is released as
soon as it is valid UTF-8 (a character split across byte-level tokens is held back until
its last byte arrives).

spaces_between_special_tokens=False, as vLLM's fast detokenizer does it: an added token
that follows another is emitted as its raw content, without the space some decoders
(WordPiece, which joins tokens with spaces) put before it. Byte-level and Metaspace
decoders never add one, so there it changes nothing."""

from __future__ import annotations

from tokenizers.decoders import DecodeStream

from service.tokenizer import Tokenizer

# Prompt tokens fed to prime the stream, so the first output token decodes with its
# left context (e.g. SentencePiece's leading-space handling).
PROMPT_CONTEXT_TOKENS = 6


class IncrementalDetokenizer:
    def __init__(
        self,
        tokenizer: Tokenizer,
        prompt_ids: list[int],
        skip_special_tokens: bool,
        spaces_between_special_tokens: bool = True,
    ):
        self._backend = tokenizer.backend
        self._added = (
            {} if skip_special_tokens or spaces_between_special_tokens else tokenizer.added_tokens
        )
        self._last_added = False
        context = prompt_ids[-PROMPT_CONTEXT_TOKENS:]
        if skip_special_tokens:
            context = [t for t in context if t not in tokenizer.special_ids]
        self._stream = DecodeStream(ids=context, skip_special_tokens=skip_special_tokens)

    def add(self, token_ids: list[int]) -> str:
        """The new text these tokens complete (possibly empty)."""
        pieces = []
        for token_id in token_ids:
            piece = self._stream.step(self._backend, token_id)
            if self._added:
                added = self._added.get(token_id)
                if added is not None and self._last_added:
                    piece = added
                self._last_added = added is not None
            if piece:
                pieces.append(piece)
        return "".join(pieces)
