"""Copying Hugging Face checkpoint tensors into the native models' parameters.

The native models fuse q/k/v into one `qkv_proj` and gate/up into one `gate_up_proj`; a
checkpoint tensor of one of those goes to its row range (shard) of the fused matrix."""

from __future__ import annotations

from collections.abc import Iterable

import structlog
import torch
from torch import nn

log = structlog.get_logger(__name__)

# HF sub-module -> (our fused module, shard index).
STACKED = {
    "q_proj": ("qkv_proj", 0),
    "k_proj": ("qkv_proj", 1),
    "v_proj": ("qkv_proj", 2),
    "gate_proj": ("gate_up_proj", 0),
    "up_proj": ("gate_up_proj", 1),
}
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


class FusedWeightLoader:
    """Loads one model. `shards` maps a fused module name ("qkv_proj", "gate_up_proj") to
    the row count of each of its shards; `skip_lm_head` drops a tied checkpoint's head."""

    def __init__(
        self, model: nn.Module, shards: dict[str, tuple[int, ...]], skip_lm_head: bool
    ) -> None:
        self.params = dict(model.named_parameters())
        self.shards = shards
        self.skip_lm_head = skip_lm_head

    def load(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Copy every tensor that maps to a parameter; returns the fully loaded names."""
        rows_loaded: dict[str, int] = {}
        skipped: list[str] = []
        for hf_name, tensor in weights:
            target = self.target(hf_name)
            if target is None or target[0] not in self.params:
                skipped.append(hf_name)
                continue
            name, shard = target
            rows_loaded[name] = rows_loaded.get(name, 0) + self._copy(name, shard, tensor, hf_name)
        if skipped:
            log.warning("checkpoint tensors not used", count=len(skipped), first=skipped[:5])
        return {n for n, p in self.params.items() if rows_loaded.get(n) == p.shape[0]}

    def target(self, hf_name: str) -> tuple[str, int | None] | None:
        """Our parameter name and shard index for a checkpoint name; None = not ours."""
        name = hf_name.removeprefix("model.")
        if name.endswith(IGNORED_SUFFIXES) or (name.startswith("lm_head.") and self.skip_lm_head):
            return None
        parts = name.split(".")
        for i, part in enumerate(parts):
            if part in STACKED:
                fused, shard = STACKED[part]
                return ".".join([*parts[:i], fused, *parts[i + 1 :]]), shard
        return name, None

    def _copy(self, name: str, shard: int | None, tensor: torch.Tensor, hf_name: str) -> int:
        param = self.params[name]
        if shard is None:
            start, length = 0, param.shape[0]
        else:
            sizes = self.shards[name.split(".")[-2]]
            start, length = sum(sizes[:shard]), sizes[shard]
        dest = param.data[start : start + length]
        if dest.shape != tensor.shape:
            raise ValueError(
                f"{hf_name}: checkpoint shape {tuple(tensor.shape)} != {tuple(dest.shape)}"
            )
        dest.copy_(tensor)
        return length
