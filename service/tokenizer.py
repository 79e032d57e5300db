"""The model's tokenizer: text <-> token ids, special tokens, and the chat template
shipped with it. A thin typed face over Hugging Face's fast tokenizer."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from engine.structured import TokenizerInfo


class Tokenizer:
    def __init__(self, model_dir: str):
        self._hf: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
            model_dir, local_files_only=True
        )
        self.chat_template: str | None = _chat_template_of(self._hf, Path(model_dir))
        self.special_ids: frozenset[int] = frozenset(self._hf.all_special_ids)
        # Added tokens (specials included): id -> content.
        self.added_tokens: dict[int, str] = {
            i: t.content for i, t in self._hf.added_tokens_decoder.items()
        }
        self._texts: dict[int, str] = {}
        self._bytes: dict[int, bytes] = {}

    @property
    def backend(self):
        """The `tokenizers.Tokenizer` behind the fast tokenizer (for streaming decode)."""
        return self._hf.backend_tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self._hf)

    @property
    def bos_token(self) -> str | None:
        return self._hf.bos_token

    @property
    def eos_token(self) -> str | None:
        return self._hf.eos_token

    def special_tokens(self) -> dict[str, str]:
        """bos_token, eos_token, ... as chat templates expect them."""
        return {k: v for k, v in self._hf.special_tokens_map.items() if isinstance(v, str)}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._hf.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, token_ids: list[int], skip_special_tokens: bool = False) -> str:
        return self._hf.decode(token_ids, skip_special_tokens=skip_special_tokens)

    def token_strings(self, token_ids: list[int]) -> list[str]:
        """Each token's vocabulary entry (e.g. "Ġhello" for byte-level BPE)."""
        return self._hf.convert_ids_to_tokens(token_ids)

    def token_text(self, token_id: int) -> str:
        """The token decoded alone (as vLLM renders logprob tokens; a partial UTF-8
        character shows as U+FFFD)."""
        text = self._texts.get(token_id)
        if text is None:
            text = self._texts[token_id] = self._hf.decode([token_id])
        return text

    def token_bytes(self, token_id: int) -> bytes:
        """The token's own bytes: for byte-level BPE the exact bytes it stands for (part of
        a character, possibly), else its text in UTF-8."""
        found = self._bytes.get(token_id)
        if found is None:
            found = self._bytes[token_id] = self._raw_bytes(token_id)
        return found

    def _raw_bytes(self, token_id: int) -> bytes:
        if token_id in self.added_tokens or not self._byte_level:
            return self.token_text(token_id).encode("utf-8")
        piece = self._hf.convert_ids_to_tokens(token_id)
        decoder = _byte_decoder()
        if piece is None or any(c not in decoder for c in piece):
            return self.token_text(token_id).encode("utf-8")
        return bytes(decoder[c] for c in piece)

    @property
    def _byte_level(self) -> bool:
        return type(self.backend.decoder).__name__ == "ByteLevel"

    def grammar_info(self, vocab_size: int, eos_token_ids: tuple[int, ...]) -> TokenizerInfo:
        """What the engine's grammar compiler needs: this tokenizer as tokenizer.json text
        (added tokens included; padding and truncation off)."""
        backend = copy.copy(self.backend)
        backend.no_padding()
        backend.no_truncation()
        return TokenizerInfo(backend.to_str(), vocab_size, eos_token_ids)


def _chat_template_of(hf: PreTrainedTokenizerBase, model_dir: Path) -> str | None:
    """tokenizer_config.json's chat_template, or chat_template.jinja / .json beside it."""
    template = getattr(hf, "chat_template", None)
    if isinstance(template, dict):  # named templates: use "default"
        template = template.get("default")
    if template:
        return template
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    as_json = model_dir / "chat_template.json"
    if as_json.is_file():
        return json.loads(as_json.read_text()).get("chat_template")
    return None


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character standing for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}
