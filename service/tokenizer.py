"""The model's tokenizer: text <-> token ids, special tokens, and the chat template
shipped with it. A thin typed face over Hugging Face's fast tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase


class Tokenizer:
    def __init__(self, model_dir: str):
        self._hf: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
            model_dir, local_files_only=True
        )
        self.chat_template: str | None = _chat_template_of(self._hf, Path(model_dir))
        self.special_ids: frozenset[int] = frozenset(self._hf.all_special_ids)

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
