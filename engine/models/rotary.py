"""Rotary position embeddings (rotate-half layout), with default, linear and llama3
frequency scaling. Config keys as written by transformers 4.x (`rope_theta`,
`rope_scaling`) and 5.x (`rope_parameters`) are both read."""

from __future__ import annotations

import math
from typing import Any

import torch

from engine.errors import UnsupportedModel

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """The merged rope settings with `rope_theta` and `rope_type` always present."""
    params = dict(config.get("rope_scaling") or {})
    params.update(config.get("rope_parameters") or {})
    params.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    params["rope_type"] = params.get("rope_type", params.get("type", "default"))
    if params["rope_type"] not in SUPPORTED_ROPE_TYPES:
        raise UnsupportedModel(
            f"rope type {params['rope_type']!r} is not supported; supported: {SUPPORTED_ROPE_TYPES}"
        )
    if config.get("partial_rotary_factor", 1.0) != 1.0:
        raise UnsupportedModel("partial_rotary_factor != 1 is not supported")
    return params


def inverse_frequencies(head_dim: int, params: dict[str, Any]) -> torch.Tensor:
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device="cpu").float() / head_dim
    inv_freq = 1.0 / (params["rope_theta"] ** exponents)
    if params["rope_type"] == "linear":
        return inv_freq / params["factor"]
    if params["rope_type"] == "llama3":
        return _llama3_scaling(inv_freq, params)
    return inv_freq


def _llama3_scaling(inv_freq: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between."""
    factor = params["factor"]
    low, high = params["low_freq_factor"], params["high_freq_factor"]
    old_len = params["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
    return torch.where(is_medium, smoothed, scaled)


class RotaryEmbedding:
    """cos/sin tables over all positions, built on first use on each device."""

    def __init__(self, head_dim: int, max_position: int, params: dict[str, Any]) -> None:
        self.head_dim = head_dim
        self.max_position = max_position
        self.inv_freq = inverse_frequencies(head_dim, params)
        self._tables: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def cos_sin(
        self, positions: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [T, head_dim] for the given positions."""
        key = (positions.device, dtype)
        if key not in self._tables:
            t = torch.arange(self.max_position, dtype=torch.float32, device="cpu")
            freqs = torch.outer(t, self.inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            self._tables[key] = (emb.cos().to(key[0], dtype), emb.sin().to(key[0], dtype))
        cos, sin = self._tables[key]
        return cos[positions], sin[positions]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [T, heads, head_dim]; cos/sin [T, head_dim]."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)
