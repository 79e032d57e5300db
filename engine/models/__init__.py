"""Model registry: config.json `architectures[0]` -> "module:Class", imported on first use.

A model class is built as `cls(config: dict, backend: AttentionBackend, dtype)` and offers:
`forward(input_ids[T], positions[T], attn_metadata, kv_caches) -> hidden[T, H]`,
`compute_logits(hidden[N, H]) -> logits[N, V]`, `load_weights(iterable of (hf_name,
tensor)) -> set of loaded parameter names`, and the attributes `num_layers`,
`num_kv_heads`, `head_dim`, `vocab_size`, `max_position_embeddings`."""

from __future__ import annotations

import importlib

from torch import nn

from engine.errors import UnsupportedModel

_MODELS: dict[str, str] = {
    "LlamaForCausalLM": "engine.models.llama:LlamaForCausalLM",
    "MistralForCausalLM": "engine.models.llama:LlamaForCausalLM",
}


def supported_architectures() -> list[str]:
    return sorted(_MODELS)


def model_class(architecture: str) -> type[nn.Module]:
    target = _MODELS.get(architecture)
    if target is None:
        raise UnsupportedModel(
            f"architecture {architecture!r} is not supported; supported: "
            f"{', '.join(supported_architectures())}"
        )
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
