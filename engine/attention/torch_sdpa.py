"""Paged attention with torch's scaled_dot_product_attention (CPU and CUDA).

Decodes are batched: each sequence's blocks are gathered and padded to the longest one,
and one SDPA call runs with a length mask. Prefills (and prefill chunks) run one sequence
at a time; a chunk's queries are the last query_len positions of its context."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.attention.base import (
    AttentionBackend,
    AttentionMetadata,
    KVCache,
    PrefillSpan,
    write_kv,
)


class TorchSDPABackend(AttentionBackend):
    name = "torch_sdpa"

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: KVCache,
        metadata: AttentionMetadata,
        *,
        scale: float,
        sliding_window: int | None = None,
    ) -> torch.Tensor:
        write_kv(kv_cache, key, value, metadata.slot_mapping)
        out = torch.empty_like(query)
        if metadata.num_decodes:
            rows = metadata.decode_token_indices
            out[rows] = _decode(query[rows], kv_cache, metadata, scale, sliding_window)
        for span in metadata.prefills:
            rows = slice(span.token_start, span.token_start + span.query_len)
            out[rows] = sdpa_prefill(
                query[rows],
                key[rows],
                value[rows],
                kv_cache,
                span,
                metadata.block_size,
                scale,
                sliding_window,
            )
        return out


def _decode(
    query: torch.Tensor,
    kv_cache: KVCache,
    metadata: AttentionMetadata,
    scale: float,
    sliding_window: int | None,
) -> torch.Tensor:
    """query [D, H, Dh] -> [D, H, Dh]: one query per sequence, over its whole context."""
    block_size = metadata.block_size
    num_blocks = -(-metadata.max_decode_context_len // block_size)
    tables = metadata.decode_block_tables[:, :num_blocks]
    keys = _gather(kv_cache[0], tables)  # [D, L, Hkv, Dh]
    values = _gather(kv_cache[1], tables)
    lens = metadata.decode_context_lens.unsqueeze(1)  # [D, 1]
    pos = torch.arange(keys.shape[1], device=query.device).unsqueeze(0)  # [1, L]
    mask = pos < lens
    if sliding_window is not None:
        mask &= pos >= lens - sliding_window
    out = F.scaled_dot_product_attention(
        query.unsqueeze(2),  # [D, H, 1, Dh]
        keys.transpose(1, 2),  # [D, Hkv, L, Dh]
        values.transpose(1, 2),
        attn_mask=mask[:, None, None, :],
        scale=scale,
        enable_gqa=query.shape[1] != keys.shape[2],
    )
    return out.squeeze(2)


def sdpa_prefill(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kv_cache: KVCache,
    span: PrefillSpan,
    block_size: int,
    scale: float,
    sliding_window: int | None,
) -> torch.Tensor:
    """query [Q, H, Dh] -> [Q, H, Dh], causal, over the sequence's context."""
    if span.context_len == span.query_len:  # nothing earlier: the new K/V are the context
        keys, values = key, value
    else:
        keys = _gather(kv_cache[0], span.block_ids)[: span.context_len]
        values = _gather(kv_cache[1], span.block_ids)[: span.context_len]
    mask = _causal_mask(span.query_len, span.context_len, sliding_window, query.device)
    out = F.scaled_dot_product_attention(
        query.transpose(0, 1).unsqueeze(0),  # [1, H, Q, Dh]
        keys.transpose(0, 1).unsqueeze(0),  # [1, Hkv, C, Dh]
        values.transpose(0, 1).unsqueeze(0),
        attn_mask=mask,
        is_causal=mask is None,
        scale=scale,
        enable_gqa=query.shape[1] != keys.shape[1],
    )
    return out.squeeze(0).transpose(0, 1)


def _causal_mask(
    query_len: int, context_len: int, sliding_window: int | None, device: torch.device
) -> torch.Tensor | None:
    """Query i sits at position context_len - query_len + i; it sees keys up to there
    (and, with a window, only the last `sliding_window` of them). None = plain causal."""
    if sliding_window is None and query_len == context_len:
        return None
    q_pos = torch.arange(context_len - query_len, context_len, device=device).unsqueeze(1)
    k_pos = torch.arange(context_len, device=device).unsqueeze(0)
    mask = k_pos <= q_pos
    if sliding_window is not None:
        mask &= k_pos > q_pos - sliding_window
    return mask


def _gather(cache: torch.Tensor, block_ids: torch.Tensor) -> torch.Tensor:
    """cache [N, bs, Hkv, Dh] at block_ids [..., n] -> [..., n * bs, Hkv, Dh]."""
    blocks = cache[block_ids]
    return blocks.flatten(-4, -3)
