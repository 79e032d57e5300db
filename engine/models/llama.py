"""Native Llama-family decoder (LlamaForCausalLM and MistralForCausalLM checkpoints), and
the layers the other Llama-like architectures (Qwen2, Qwen3) are built from.

Tokens of the whole batch come flattened ([T]); attention goes through the paged backend.
q/k/v and gate/up projections are fused; `load_weights` maps the Hugging Face names.
An architecture that differs only in options (biases, q/k norms, per-layer windows)
subclasses LlamaForCausalLM and overrides `args_from_config`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.attention.base import AttentionBackend, AttentionMetadata, KVCache
from engine.errors import UnsupportedModel
from engine.models.cpu_ops import rotate_half_
from engine.models.layers import GatedMLP, RMSNorm, SlicedLinear, sliced_linear
from engine.models.rotary import RotaryEmbedding, rope_parameters
from engine.models.weights import FusedWeightLoader


@dataclass(frozen=True)
class LlamaArgs:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    qkv_bias: bool  # q/k/v projections have a bias
    o_proj_bias: bool
    mlp_bias: bool
    qk_norm: bool  # per-head RMSNorm on q and k before RoPE (Qwen3)
    sliding_windows: tuple[int | None, ...]  # per layer: attend to this many keys, or all
    rope: dict[str, Any]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LlamaArgs:
        if config.get("hidden_act", "silu") != "silu":
            raise UnsupportedModel(
                f"hidden_act {config['hidden_act']!r} is not supported (silu only)"
            )
        heads, layers = config["num_attention_heads"], config["num_hidden_layers"]
        bias = config.get("attention_bias", False)
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"],
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            rms_norm_eps=config.get("rms_norm_eps", 1e-6),
            max_position_embeddings=config.get("max_position_embeddings", 2048),
            tie_word_embeddings=config.get("tie_word_embeddings", False),
            qkv_bias=bias,
            o_proj_bias=bias,
            mlp_bias=config.get("mlp_bias", False),
            qk_norm=False,
            sliding_windows=(config.get("sliding_window"),) * layers,
            rope=rope_parameters(config),
        )


class LlamaAttention(nn.Module):
    def __init__(
        self,
        args: LlamaArgs,
        sliding_window: int | None,
        backend: AttentionBackend,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = (
            args.num_heads,
            args.num_kv_heads,
            args.head_dim,
        )
        q_size, kv_size = args.num_heads * args.head_dim, args.num_kv_heads * args.head_dim
        self.split = (q_size, kv_size, kv_size)
        self.qkv_proj = nn.Linear(
            args.hidden_size, sum(self.split), bias=args.qkv_bias, dtype=dtype
        )
        self.o_proj = nn.Linear(q_size, args.hidden_size, bias=args.o_proj_bias, dtype=dtype)
        self.q_norm = self.k_norm = None
        if args.qk_norm:
            self.q_norm = RMSNorm(args.head_dim, args.rms_norm_eps, dtype)
            self.k_norm = RMSNorm(args.head_dim, args.rms_norm_eps, dtype)
        self.backend = backend
        self.scale = args.head_dim**-0.5
        self.sliding_window = sliding_window

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        tokens, heads, kv_heads = x.shape[0], self.num_heads, self.num_kv_heads
        head_dim = self.head_dim
        qkv = self.qkv_proj(x)
        q, k, v = qkv.split(self.split, dim=-1)
        if self.q_norm is not None and self.k_norm is not None:
            q = self.q_norm(q.view(tokens, heads, head_dim)).view(tokens, -1)
            k = self.k_norm(k.view(tokens, kv_heads, head_dim)).view(tokens, -1)
            rotate_half_(q, heads, head_dim, cos, sin)
            rotate_half_(k, kv_heads, head_dim, cos, sin)
        else:  # q and k lead each row of qkv: one pass over both
            rotate_half_(qkv, heads + kv_heads, head_dim, cos, sin)
        q = q.view(tokens, heads, head_dim)
        k = k.view(tokens, kv_heads, head_dim)
        v = v.view(tokens, kv_heads, head_dim)
        out = self.backend.forward(
            q, k, v, kv_cache, metadata, scale=self.scale, sliding_window=self.sliding_window
        )
        return self.o_proj(out.reshape(tokens, -1))


class LlamaDecoderLayer(nn.Module):
    def __init__(
        self, args: LlamaArgs, index: int, backend: AttentionBackend, dtype: torch.dtype
    ) -> None:
        super().__init__()
        window = args.sliding_windows[index]
        self.input_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps, dtype)
        self.self_attn = LlamaAttention(args, window, backend, dtype)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps, dtype)
        self.mlp = GatedMLP(args.hidden_size, args.intermediate_size, args.mlp_bias, dtype)

    def forward(
        self,
        x: torch.Tensor,
        delta: torch.Tensor | None,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        """The residual stream x (updated in place) and the previous layer's output still to
        be added to it (None for the first layer) -> this layer's output, not yet added: each
        add is fused with the norm that follows it."""
        attn = self.self_attn(self.input_layernorm.add_norm(x, delta), cos, sin, kv_cache, metadata)
        return self.mlp(self.post_attention_layernorm.add_norm(x, attn))


class LlamaForCausalLM(nn.Module):
    def __init__(
        self, config: dict[str, Any], backend: AttentionBackend, dtype: torch.dtype
    ) -> None:
        super().__init__()
        args = self.args = self.args_from_config(config)
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size, dtype=dtype)
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(args, i, backend, dtype) for i in range(args.num_layers)
        )
        self.norm = RMSNorm(args.hidden_size, args.rms_norm_eps, dtype)
        self.lm_head = self.tied_head = None  # tied_head: see engine.models.packed_linear
        if not args.tie_word_embeddings:
            self.lm_head = SlicedLinear(args.hidden_size, args.vocab_size, bias=False, dtype=dtype)
        self.rotary = RotaryEmbedding(args.head_dim, args.max_position_embeddings, args.rope)
        # What the engine sizes the KV cache and validates requests with:
        self.num_layers, self.num_kv_heads, self.head_dim = (
            args.num_layers,
            args.num_kv_heads,
            args.head_dim,
        )
        self.vocab_size, self.max_position_embeddings = (
            args.vocab_size,
            args.max_position_embeddings,
        )

    @classmethod
    def args_from_config(cls, config: dict[str, Any]) -> LlamaArgs:
        """config.json -> the options this class is built from."""
        return LlamaArgs.from_config(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        metadata: AttentionMetadata,
        kv_caches: list[KVCache],
    ) -> torch.Tensor:
        """input_ids, positions [T] -> hidden states [T, hidden] (final norm applied)."""
        x = self.embed_tokens(input_ids)  # a fresh tensor: the residual stream, added to in place
        cos, sin = self.rotary.cos_sin(positions, x.dtype)
        delta = None
        for layer, kv_cache in zip(self.layers, kv_caches, strict=True):
            delta = layer(x, delta, cos, sin, kv_cache, metadata)
        return self.norm.add_norm(x, delta)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [N, hidden] -> logits [N, vocab]."""
        head = self.lm_head or self.tied_head
        return sliced_linear(hidden, self.embed_tokens.weight) if head is None else head(hidden)

    def tied_head_weight(self) -> torch.Tensor | None:
        """The LM head's weight where it is the token embedding's."""
        return self.embed_tokens.weight if self.lm_head is None else None

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Copy Hugging Face tensors into our parameters; returns the fully loaded names."""
        args = self.args
        kv = args.num_kv_heads * args.head_dim
        shards = {
            "qkv_proj": (args.num_heads * args.head_dim, kv, kv),
            "gate_up_proj": (args.intermediate_size, args.intermediate_size),
        }
        return FusedWeightLoader(self, shards, skip_lm_head=self.lm_head is None).load(weights)
