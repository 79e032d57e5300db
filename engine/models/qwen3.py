"""Native Qwen3 (Qwen3ForCausalLM): the Llama decoder with a per-head RMSNorm on q and k
(`q_norm`, `k_norm`) before RoPE, an explicit `head_dim` (not hidden / heads), biases only
if `attention_bias`, and Qwen2's per-layer sliding-window rule."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.models.llama import LlamaArgs, LlamaForCausalLM
from engine.models.qwen2 import layer_sliding_windows


class Qwen3ForCausalLM(LlamaForCausalLM):
    @classmethod
    def args_from_config(cls, config: dict[str, Any]) -> LlamaArgs:
        return replace(
            LlamaArgs.from_config(config),
            qk_norm=True,
            sliding_windows=layer_sliding_windows(config),
        )
