"""Structured-output specs -> grammars of the llguidance engine, validated against one
tokenizer and cached (LRU, keyed by spec; one compiler per tokenizer).

Why llguidance rather than xgrammar (measured on this project's CPU, 32k-token byte-level
BPE, the JSON schema of benchmarks/grammar_backends.py; docs/architecture.md has the
figures): compiling a new schema took ~1 ms against 320-450 ms (xgrammar precomputes a token
mask cache per grammar), a step's masks for 32 requests ~0.8 ms against ~0.05 ms (both
under 1% of a decode step of the small model), and it is one 3 MB wheel where xgrammar
pulls triton. A server that sees many distinct schemas (tool calls, per-user formats)
pays the compile on each first request's latency; the mask cost is paid per step, but is
small next to the forward pass. It also reads Lark grammars natively (GBNF converted)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from engine.errors import InvalidParameter
from engine.structured.spec import StructuredOutputSpec, TokenizerInfo

CACHE_SIZE = 512
MAX_JSON_NESTING = 64  # deeper schemas are refused (as vLLM does)


def field_of(spec: StructuredOutputSpec) -> str:
    """The request field an error about this spec names."""
    return f"structured_outputs.{spec.kind}"


class GrammarCompiler:
    """Thread-safe: the service validates on its event loop while the step thread makes
    matchers."""

    def __init__(self, info: TokenizerInfo) -> None:
        import llguidance  # a dependency of the engine, imported where it is used

        self._llg = llguidance
        self.tokenizer = llguidance.LLTokenizer(
            info.tokenizer_json, n_vocab=info.vocab_size, eos_token=list(info.eos_token_ids)
        )
        self.vocab_size = info.vocab_size
        self._cache: OrderedDict[StructuredOutputSpec, Any] = OrderedDict()
        self._lock = threading.Lock()

    def compile(self, spec: StructuredOutputSpec):
        """A pristine matcher of this spec (callers deep_copy it); InvalidParameter naming
        the field when the spec is malformed."""
        with self._lock:
            cached = self._cache.get(spec)
            if cached is not None:
                self._cache.move_to_end(spec)
                return cached
        grammar = self._grammar(spec)
        error = self._llg.LLMatcher.validate_grammar(grammar, self.tokenizer)
        if error:
            raise InvalidParameter(field_of(spec), f"Invalid {spec.kind} constraint: {error}")
        matcher = self._llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise InvalidParameter(
                field_of(spec), f"Invalid {spec.kind} constraint: {matcher.get_error()}"
            )
        with self._lock:
            self._cache[spec] = matcher
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return matcher

    def _grammar(self, spec: StructuredOutputSpec) -> str:
        try:
            return _GRAMMARS[spec.kind](self._llg, spec)
        except (ValueError, TypeError, KeyError, AssertionError) as exc:
            raise InvalidParameter(
                field_of(spec), f"Invalid {spec.kind} constraint: {exc}"
            ) from exc


def _json_options(spec: StructuredOutputSpec) -> dict:
    options: dict[str, Any] = {"whitespace_flexible": not spec.disable_any_whitespace}
    if spec.whitespace_pattern:
        options["whitespace_pattern"] = spec.whitespace_pattern
    return options


def _json(llg, spec: StructuredOutputSpec) -> str:
    try:
        schema = json.loads(spec.value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the JSON schema is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict | bool):
        raise ValueError("a JSON schema must be an object or a boolean")
    if _depth(schema) > MAX_JSON_NESTING:
        raise ValueError(f"the JSON schema nests deeper than {MAX_JSON_NESTING} levels")
    if spec.disable_additional_properties:
        schema = _close_objects(schema)
    return llg.LLMatcher.grammar_from_json_schema(schema, defaults=_json_options(spec))


def _json_object(llg, spec: StructuredOutputSpec) -> str:
    return llg.LLMatcher.grammar_from_json_schema({"type": "object"}, defaults=_json_options(spec))


def _choice(llg, spec: StructuredOutputSpec) -> str:
    choices = json.loads(spec.value)
    if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
        raise ValueError("choice must be a non-empty list of strings")
    return llg.grammar_from("choice", choices)


def _grammar(llg, spec: StructuredOutputSpec) -> str:
    if not spec.value.strip():
        raise ValueError("the grammar is empty")
    return llg.grammar_from("grammar", spec.value)  # Lark, or GBNF/EBNF converted to Lark


def _regex(llg, spec: StructuredOutputSpec) -> str:
    return llg.LLMatcher.grammar_from_regex(spec.value)


def _structural_tag(llg, spec: StructuredOutputSpec) -> str:
    """vLLM's format: {"structures": [{"begin", "schema", "end"}], "triggers": [...]}."""
    tag = json.loads(spec.value)
    triggers: list[str] = tag["triggers"]
    tags = []
    for structure in tag["structures"]:
        begin = structure["begin"]
        trigger = next((t for t in triggers if begin.startswith(t)), None)
        if trigger is None:
            raise ValueError(f"no trigger of {triggers} starts {begin!r}")
        tags.append(
            llg.StructTag(
                trigger=trigger, begin=begin, grammar=structure["schema"], end=structure["end"]
            )
        )
    if not tags:
        raise ValueError("the structural tag has no structures")
    return llg.StructTag.to_grammar(tags)


_GRAMMARS = {
    "json": _json,
    "json_object": _json_object,
    "choice": _choice,
    "grammar": _grammar,
    "regex": _regex,
    "structural_tag": _structural_tag,
}


def _depth(node: Any) -> int:
    if isinstance(node, dict):
        return 1 + max((_depth(v) for v in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((_depth(v) for v in node), default=0)
    return 0


def _close_objects(node: Any) -> Any:
    """additionalProperties: false on every object schema that does not say otherwise."""
    if isinstance(node, list):
        return [_close_objects(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _close_objects(v) for k, v in node.items()}
    if out.get("type") == "object" or "properties" in out:
        out.setdefault("additionalProperties", False)
    return out
