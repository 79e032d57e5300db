"""Our paged attention inside a transformers model: an attention function registered with
transformers' AttentionInterface as ATTN_IMPLEMENTATION.

transformers calls it in every attention layer as
`fn(module, query, key, value, attention_mask, scaling=..., sliding_window=..., **kwargs)`,
with q/k/v already projected and rotated, shaped [1, heads, T, head_dim] (the flattened
batch is one row of T tokens), and the keyword arguments the model's forward was called
with. The per-forward state (backend, AttentionMetadata, KV caches) arrives that way, as
the STEP_KWARG keyword argument: it lives exactly as long as one model call.

An AttentionProbe in place of the PagedStep runs one load-time forward that records what
each layer passes, so a model the backends cannot serve fails at load time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from engine.attention.base import AttentionBackend, AttentionMetadata, KVCache
from engine.errors import UnsupportedModel

ATTN_IMPLEMENTATION = "protoserve_paged"
STEP_KWARG = "protoserve_step"
# Attention-function arguments whose effect the paged backends do not implement.
_UNSUPPORTED_KWARGS = ("softcap", "s_aux", "sinks", "head_mask")


class AttentionStep(Protocol):
    def attend(
        self,
        module: nn.Module,
        query: torch.Tensor,  # [T, heads, head_dim]
        key: torch.Tensor,  # [T, kv_heads, head_dim]
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scale: float,
        kwargs: dict[str, Any],
    ) -> torch.Tensor:  # [T, heads, head_dim]
        ...


def paged_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The AttentionInterface function: returns ([1, T, heads, head_dim], no weights)."""
    step: AttentionStep | None = kwargs.pop(STEP_KWARG, None)
    if step is None:
        raise UnsupportedModel(
            f"{type(module).__name__} does not pass the model's keyword arguments on to its "
            "attention function"
        )
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))
    return step.attend(module, q, k, v, attention_mask, scale, kwargs).unsqueeze(0), None


def register_attention() -> None:
    """Make ATTN_IMPLEMENTATION known to transformers (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, paged_attention)


def _sliding_window(module: nn.Module, kwargs: dict[str, Any]) -> int | None:
    if "sliding_window" in kwargs:
        return kwargs["sliding_window"]
    return getattr(module, "sliding_window", None)


@dataclass(frozen=True)
class PagedStep:
    """One forward of the flattened batch through the paged backend."""

    backend: AttentionBackend
    metadata: AttentionMetadata
    kv_caches: list[KVCache]  # indexed by the attention module's layer_idx

    def attend(
        self,
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scale: float,
        kwargs: dict[str, Any],
    ) -> torch.Tensor:
        kv_cache = self.kv_caches[module.layer_idx]
        dtype = kv_cache[0].dtype  # some models rotate in float32
        out = self.backend.forward(
            query.to(dtype),
            key.to(dtype),
            value.to(dtype),
            kv_cache,
            self.metadata,
            scale=scale,
            sliding_window=_sliding_window(module, kwargs),
        )
        return out.to(query.dtype)


@dataclass(frozen=True)
class LayerCall:
    """What one attention call of the probe forward looked like."""

    layer_idx: int | None
    num_heads: int
    num_kv_heads: int
    head_dim: int
    problems: tuple[str, ...]  # why the paged backend cannot compute it


@dataclass
class AttentionProbe:
    """Records each call and computes dense causal attention over the single sequence."""

    calls: list[LayerCall] = field(default_factory=list)

    def attend(
        self,
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scale: float,
        kwargs: dict[str, Any],
    ) -> torch.Tensor:
        layer_idx = getattr(module, "layer_idx", None)
        heads, kv_heads = query.shape[1], key.shape[1]
        problems = [f"passes `{n}`" for n in _UNSUPPORTED_KWARGS if kwargs.get(n) is not None]
        if attention_mask is not None:
            problems.append("builds its own attention mask")
        if not (getattr(module, "is_causal", True) and kwargs.get("is_causal", True)):
            problems.append("is not causal")
        if not isinstance(layer_idx, int):
            problems.append("has no layer_idx")
        if heads % kv_heads or key.shape[-1] != value.shape[-1]:
            problems.append(f"has q/k/v shapes {[tuple(t.shape) for t in (query, key, value)]}")
        self.calls.append(LayerCall(layer_idx, heads, kv_heads, key.shape[-1], tuple(problems)))
        return _dense_causal(query, key, value, scale, _sliding_window(module, kwargs))

    def layout(self, num_layers: int) -> tuple[int, int]:
        """(num_kv_heads, head_dim) shared by all layers, or UnsupportedModel saying why."""
        problems = sorted({f"layer {c.layer_idx} {p}" for c in self.calls for p in c.problems})
        if problems:
            raise UnsupportedModel("attention: " + "; ".join(problems))
        layers = [c.layer_idx for c in self.calls]
        if sorted(layers) != list(range(num_layers)):
            raise UnsupportedModel(
                f"attention must run once in each of the {num_layers} layers through the "
                f"AttentionInterface; it ran for layers {layers}"
            )
        shapes = {(c.num_kv_heads, c.head_dim) for c in self.calls}
        if len(shapes) != 1:
            raise UnsupportedModel(f"layers differ in (kv heads, head_dim): {sorted(shapes)}")
        return shapes.pop()


def _dense_causal(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, window: int | None
) -> torch.Tensor:
    """[T, H, D] x [T, Hkv, D] -> [T, H, D], one sequence at positions 0..T-1."""
    pos = torch.arange(query.shape[0], device=query.device)
    mask = pos[None, :] <= pos[:, None]
    if window is not None:
        mask &= pos[None, :] > pos[:, None] - window
    out = F.scaled_dot_product_attention(
        query.transpose(0, 1),
        key.transpose(0, 1).to(query.dtype),
        value.transpose(0, 1).to(query.dtype),
        attn_mask=mask,
        scale=scale,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return out.transpose(0, 1)
