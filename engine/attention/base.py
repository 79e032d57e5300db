"""The attention backend interface and the per-step metadata every backend reads.

The runner builds one AttentionMetadata per step and passes it explicitly down the model
to each attention layer; nothing lives in a module global."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch

KVCache = tuple[torch.Tensor, torch.Tensor]  # (k_cache, v_cache) of one layer


@dataclass(frozen=True)
class PrefillSpan:
    """One sequence of the batch with more than one new token (prompt or chunk)."""

    token_start: int  # its first row in the flattened batch
    query_len: int  # its rows (new tokens) this step
    context_len: int  # tokens in the cache after this step's write (earlier + new)
    block_ids: torch.Tensor  # [ceil(context_len / block_size)] int64 on the device


@dataclass(frozen=True)
class AttentionMetadata:
    num_tokens: int  # rows of the flattened batch (T)
    block_size: int
    slot_mapping: torch.Tensor  # [T] int64: cache slot each new token's K/V goes to
    query_start_loc: torch.Tensor  # [B + 1] int32: row offsets of the sequences
    context_lens: torch.Tensor  # [B] int32: tokens in the cache after this step's write
    block_tables: torch.Tensor  # [B, max_blocks] int64, padded with 0
    # Single-token sequences (decodes), batched together by backends:
    decode_token_indices: torch.Tensor  # [D] int64: their rows in the batch
    decode_block_tables: torch.Tensor  # [D, max_decode_blocks] int64, padded with 0
    decode_context_lens: torch.Tensor  # [D] int64
    max_decode_context_len: int  # host copy: how many cache positions decodes look at
    prefills: list[PrefillSpan]  # the other sequences, in batch order

    @property
    def num_decodes(self) -> int:
        return int(self.decode_token_indices.shape[0])


class AttentionBackend(abc.ABC):
    """Paged attention for one model: writes new K/V to the cache, attends over it."""

    name: str = ""

    @abc.abstractmethod
    def forward(
        self,
        query: torch.Tensor,  # [T, num_heads, head_dim]
        key: torch.Tensor,  # [T, num_kv_heads, head_dim]
        value: torch.Tensor,  # [T, num_kv_heads, head_dim]
        kv_cache: KVCache,  # each [num_blocks, block_size, num_kv_heads, head_dim]
        metadata: AttentionMetadata,
        *,
        scale: float,
        sliding_window: int | None = None,  # keys within this many positions, or all
    ) -> torch.Tensor:
        """Attention output [T, num_heads, head_dim]; causal within each sequence."""

    def prepare(self, metadata: AttentionMetadata) -> None:  # noqa: B027 - optional hook
        """Called by the runner once per step before the forward, for backends that plan
        kernels per batch (flashinfer's plan()). The SDPA backend needs nothing."""


def write_kv(
    kv_cache: KVCache, key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor
) -> None:
    """Scatter the new tokens' K/V into their cache slots."""
    k_cache, v_cache = kv_cache
    num_kv_heads, head_dim = k_cache.shape[-2:]
    k_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, slots, key.to(k_cache.dtype))
    v_cache.view(-1, num_kv_heads, head_dim).index_copy_(0, slots, value.to(v_cache.dtype))
