"""Model registry: config.json `architectures[0]` -> "module:Class", imported on first use.

A native model class is built as `cls(config: dict, backend: AttentionBackend, dtype)` (on
the meta device; the loader then fills it) and offers:
`forward(input_ids[T], positions[T], attn_metadata, kv_caches) -> hidden[T, H]`,
`compute_logits(hidden[N, H]) -> logits[N, V]`, `load_weights(iterable of (hf_name,
tensor)) -> set of loaded parameter names`, and the attributes `num_layers`,
`num_kv_heads`, `head_dim`, `vocab_size`, `max_position_embeddings`.

Architectures not listed here are served by the transformers fallback
(`engine.models.transformers_fallback`), which offers the same interface but loads itself
(`TransformersForCausalLM.load`); `model_impl` chooses between the two."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from engine.config import MODEL_IMPLS
from engine.errors import UnsupportedModel

_MODELS: dict[str, str] = {
    "LlamaForCausalLM": "engine.models.llama:LlamaForCausalLM",
    "MistralForCausalLM": "engine.models.llama:LlamaForCausalLM",
    "Qwen2ForCausalLM": "engine.models.qwen2:Qwen2ForCausalLM",
    "Qwen3ForCausalLM": "engine.models.qwen3:Qwen3ForCausalLM",
    "WhisperForConditionalGeneration": "engine.models.whisper:WhisperForConditionalGeneration",
}

_FALLBACK = "engine.models.transformers_fallback:TransformersForCausalLM"


def supported_architectures() -> list[str]:
    return sorted(_MODELS)


def use_native(architecture: str, model_impl: str) -> bool:
    """Whether `model_impl` ("auto" | "native" | "transformers") picks the native class."""
    if model_impl not in MODEL_IMPLS:
        raise ValueError(f"model_impl must be one of {MODEL_IMPLS}, got {model_impl!r}")
    if model_impl == "auto":
        return architecture in _MODELS
    return model_impl == "native"


def model_class(architecture: str) -> type[nn.Module]:
    target = _MODELS.get(architecture)
    if target is None:
        raise UnsupportedModel(
            f"architecture {architecture!r} has no native implementation; native: "
            f"{', '.join(supported_architectures())} (model_impl 'auto' or 'transformers' "
            "serves others through transformers)"
        )
    return _import(target)


def fallback_class() -> Any:
    """TransformersForCausalLM (imports transformers); built by its `load` classmethod."""
    return _import(_FALLBACK)


def _import(target: str) -> Any:
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
