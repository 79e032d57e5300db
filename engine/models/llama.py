"""Native Llama-family decoder (LlamaForCausalLM and MistralForCausalLM checkpoints).

Tokens of the whole batch come flattened ([T]); attention goes through the paged backend.
q/k/v and gate/up projections are fused; `load_weights` maps the Hugging Face names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
import torch
import torch.nn.functional as F
from torch import nn

from engine.attention.base import AttentionBackend, AttentionMetadata, KVCache
from engine.errors import UnsupportedModel
from engine.models.layers import GatedMLP, RMSNorm
from engine.models.rotary import RotaryEmbedding, apply_rotary, rope_parameters

log = structlog.get_logger(__name__)

# HF sub-module -> (our fused module, shard index).
_STACKED = {
    "q_proj": ("qkv_proj", 0),
    "k_proj": ("qkv_proj", 1),
    "v_proj": ("qkv_proj", 2),
    "gate_proj": ("gate_up_proj", 0),
    "up_proj": ("gate_up_proj", 1),
}
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


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
    attention_bias: bool
    mlp_bias: bool
    sliding_window: int | None
    rope: dict[str, Any]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LlamaArgs:
        if config.get("hidden_act", "silu") != "silu":
            raise UnsupportedModel(
                f"hidden_act {config['hidden_act']!r} is not supported (silu only)"
            )
        heads = config["num_attention_heads"]
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            rms_norm_eps=config.get("rms_norm_eps", 1e-6),
            max_position_embeddings=config.get("max_position_embeddings", 2048),
            tie_word_embeddings=config.get("tie_word_embeddings", False),
            attention_bias=config.get("attention_bias", False),
            mlp_bias=config.get("mlp_bias", False),
            sliding_window=config.get("sliding_window"),
            rope=rope_parameters(config),
        )


class LlamaAttention(nn.Module):
    def __init__(self, args: LlamaArgs, backend: AttentionBackend, dtype: torch.dtype) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = (
            args.num_heads,
            args.num_kv_heads,
            args.head_dim,
        )
        q_size, kv_size = args.num_heads * args.head_dim, args.num_kv_heads * args.head_dim
        self.split = (q_size, kv_size, kv_size)
        self.qkv_proj = nn.Linear(
            args.hidden_size, sum(self.split), bias=args.attention_bias, dtype=dtype
        )
        self.o_proj = nn.Linear(q_size, args.hidden_size, bias=args.attention_bias, dtype=dtype)
        self.backend = backend
        self.scale = args.head_dim**-0.5
        self.sliding_window = args.sliding_window

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        tokens = x.shape[0]
        q, k, v = self.qkv_proj(x).split(self.split, dim=-1)
        q = apply_rotary(q.view(tokens, self.num_heads, self.head_dim), cos, sin)
        k = apply_rotary(k.view(tokens, self.num_kv_heads, self.head_dim), cos, sin)
        v = v.view(tokens, self.num_kv_heads, self.head_dim)
        out = self.backend.forward(
            q, k, v, kv_cache, metadata, scale=self.scale, sliding_window=self.sliding_window
        )
        return self.o_proj(out.reshape(tokens, -1))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, args: LlamaArgs, backend: AttentionBackend, dtype: torch.dtype) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps, dtype)
        self.self_attn = LlamaAttention(args, backend, dtype)
        self.post_attention_layernorm = RMSNorm(args.hidden_size, args.rms_norm_eps, dtype)
        self.mlp = GatedMLP(args.hidden_size, args.intermediate_size, args.mlp_bias, dtype)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv_cache, metadata)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaForCausalLM(nn.Module):
    def __init__(
        self, config: dict[str, Any], backend: AttentionBackend, dtype: torch.dtype
    ) -> None:
        super().__init__()
        args = self.args = LlamaArgs.from_config(config)
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size, dtype=dtype)
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(args, backend, dtype) for _ in range(args.num_layers)
        )
        self.norm = RMSNorm(args.hidden_size, args.rms_norm_eps, dtype)
        self.lm_head = None
        if not args.tie_word_embeddings:
            self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False, dtype=dtype)
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

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        metadata: AttentionMetadata,
        kv_caches: list[KVCache],
    ) -> torch.Tensor:
        """input_ids, positions [T] -> hidden states [T, hidden] (final norm applied)."""
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary.cos_sin(positions, x.dtype)
        for layer, kv_cache in zip(self.layers, kv_caches, strict=True):
            x = layer(x, cos, sin, kv_cache, metadata)
        return self.norm(x)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [N, hidden] -> logits [N, vocab]."""
        weight = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(hidden, weight)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Copy Hugging Face tensors into our parameters; returns the fully loaded names."""
        params = dict(self.named_parameters())
        rows_loaded: dict[str, int] = {}
        skipped: list[str] = []
        for hf_name, tensor in weights:
            target = self._target(hf_name)
            if target is None or target[0] not in params:
                skipped.append(hf_name)
                continue
            name, shard = target
            rows = self._copy(params[name], name, shard, tensor, hf_name)
            rows_loaded[name] = rows_loaded.get(name, 0) + rows
        if skipped:
            log.warning("checkpoint tensors not used", count=len(skipped), first=skipped[:5])
        return {n for n, p in params.items() if rows_loaded.get(n) == p.shape[0]}

    def _target(self, hf_name: str) -> tuple[str, int | None] | None:
        """Our parameter name and shard index for a checkpoint name; None = not ours."""
        name = hf_name.removeprefix("model.")
        if name.endswith(_IGNORED_SUFFIXES) or (
            name.startswith("lm_head.") and self.lm_head is None
        ):
            return None
        parts = name.split(".")
        for i, part in enumerate(parts):
            if part in _STACKED:
                fused, shard = _STACKED[part]
                return ".".join([*parts[:i], fused, *parts[i + 1 :]]), shard
        return name, None

    def _copy(
        self, param: nn.Parameter, name: str, shard: int | None, tensor: torch.Tensor, hf_name: str
    ) -> int:
        split = self._split_of(name)
        start = 0 if shard is None else sum(split[:shard])
        length = param.shape[0] if shard is None else split[shard]
        dest = param.data[start : start + length]
        if dest.shape != tensor.shape:
            raise ValueError(
                f"{hf_name}: checkpoint shape {tuple(tensor.shape)} != {tuple(dest.shape)}"
            )
        dest.copy_(tensor)
        return length

    def _split_of(self, name: str) -> tuple[int, ...]:
        args = self.args
        if ".qkv_proj." in f".{name}":
            kv = args.num_kv_heads * args.head_dim
            return (args.num_heads * args.head_dim, kv, kv)
        if ".gate_up_proj." in f".{name}":
            return (args.intermediate_size, args.intermediate_size)
        return ()
