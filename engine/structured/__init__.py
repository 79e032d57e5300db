"""Structured outputs: specs (spec.py), their grammars compiled and cached per tokenizer
with llguidance (compiler.py), per-request matchers and the step's batched token bitmask
(manager.py)."""

from engine.structured.spec import KINDS, StructuredOutputSpec, TokenizerInfo

__all__ = ["KINDS", "StructuredOutputSpec", "TokenizerInfo"]
