"""Native Qwen2 (Qwen2ForCausalLM, e.g. Qwen2 / Qwen2.5): the Llama decoder with a bias on
the q/k/v projections (none on o_proj), and a sliding window only on the layers that
`layer_types` marks (or, in older configs, the layers from `max_window_layers` on) when
`use_sliding_window` is true. Small checkpoints tie the head to the embeddings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.errors import UnsupportedModel
from engine.models.llama import LlamaArgs, LlamaForCausalLM

_LAYER_TYPES = ("full_attention", "sliding_attention")


def layer_sliding_windows(config: dict[str, Any]) -> tuple[int | None, ...]:
    """Per layer, the window that transformers' Qwen2/Qwen3 attention uses (or None)."""
    num_layers = config["num_hidden_layers"]
    window = config.get("sliding_window") if config.get("use_sliding_window") else None
    layer_types = config.get("layer_types") or [
        "sliding_attention"
        if window is not None and i >= config.get("max_window_layers", num_layers)
        else "full_attention"
        for i in range(num_layers)
    ]
    unknown = sorted(set(layer_types) - set(_LAYER_TYPES))
    if unknown or len(layer_types) != num_layers:
        raise UnsupportedModel(
            f"layer_types must list {num_layers} of {_LAYER_TYPES}, got {layer_types!r}"
        )
    return tuple(window if kind == "sliding_attention" else None for kind in layer_types)


class Qwen2ForCausalLM(LlamaForCausalLM):
    @classmethod
    def args_from_config(cls, config: dict[str, Any]) -> LlamaArgs:
        return replace(
            LlamaArgs.from_config(config),
            qkv_bias=True,
            o_proj_bias=False,
            sliding_windows=layer_sliding_windows(config),
        )
