"""What a structured-output request asks for, and what the grammar engine needs to know
of the tokenizer. Plain frozen dataclasses: hashable (compiled grammars are cached by
spec), and built by callers that know protobuf or the tokenizer (the service)."""

from __future__ import annotations

from dataclasses import dataclass

# The constraint kinds, as in vLLM's structured_outputs.
KINDS = ("json", "json_object", "regex", "choice", "grammar", "structural_tag")


@dataclass(frozen=True)
class StructuredOutputSpec:
    kind: str  # one of KINDS
    # json: the JSON Schema as text; regex; choice: a JSON list of strings; grammar: Lark or
    # GBNF/EBNF; structural_tag: vLLM's JSON format; json_object: unused.
    value: str = ""
    disable_any_whitespace: bool = False  # JSON: no whitespace between tokens
    disable_additional_properties: bool = False  # JSON: objects closed unless stated
    whitespace_pattern: str | None = None  # JSON: the whitespace allowed, as a regex

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"structured output kind must be one of {KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class TokenizerInfo:
    """The vocabulary a grammar engine masks: the Hugging Face tokenizer serialised as
    tokenizer.json text (added tokens included), the model's vocabulary size (rows of the
    logits, >= the tokenizer's) and the EOS ids a finished grammar allows."""

    tokenizer_json: str
    vocab_size: int
    eos_token_ids: tuple[int, ...]
