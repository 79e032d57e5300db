"""Paged attention on the CPU: decodes through the C kernel, prefills through SDPA.

Decode rows read K/V straight from the block-table cache (csrc/paged_decode.c): no gather
copy, no padding to the longest context. Prefills, including later chunks over earlier
context, keep the SDPA path. The kernel takes float32 with head_dim a multiple of 8; anything
else takes the whole TorchSDPABackend path. Constructing the backend builds the kernel (once
per process) and raises KernelBuildError when it cannot; `default_backend` then picks
torch_sdpa."""

from __future__ import annotations

import ctypes

import torch

from engine.attention.base import AttentionBackend, AttentionMetadata, KVCache
from engine.attention.cpu_kernels import DecodeArgs, KernelBuildError, load_kernels
from engine.attention.torch_sdpa import TorchSDPABackend, sdpa_prefill


class CpuPagedBackend(AttentionBackend):
    name = "cpu_paged"

    def __init__(self) -> None:
        self._lib = load_kernels()
        self._sdpa = TorchSDPABackend()

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
        if not _kernel_supports((query, key, value, *kv_cache)):
            return self._sdpa.forward(
                query, key, value, kv_cache, metadata, scale=scale, sliding_window=sliding_window
            )
        self._write_kv(kv_cache, key, value, metadata.slot_mapping)
        query = _rows_contiguous(query)
        out = torch.empty(query.shape, dtype=query.dtype)
        if metadata.num_decodes:
            self._decode(query, kv_cache, metadata, out, scale, sliding_window)
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
        self,
        query: torch.Tensor,
        kv_cache: KVCache,
        metadata: AttentionMetadata,
        out: torch.Tensor,
        scale: float,
        sliding_window: int | None,
    ) -> None:
        """Fill out's decode rows from query's, in place (the kernel indexes the rows)."""
        k_cache, v_cache = kv_cache
        rows, tables, lens = map(
            _int64,
            (
                metadata.decode_token_indices,
                metadata.decode_block_tables,
                metadata.decode_context_lens,
            ),
        )  # held in locals: the kernel reads their memory
        args = DecodeArgs(
            q=query.data_ptr(),
            q_row_stride=query.stride(0),
            k_cache=k_cache.data_ptr(),
            v_cache=v_cache.data_ptr(),
            rows=rows.data_ptr(),
            block_tables=tables.data_ptr(),
            bt_stride=tables.stride(0),
            context_lens=lens.data_ptr(),
            out=out.data_ptr(),
            num_heads=query.shape[1],
            num_kv_heads=k_cache.shape[2],
            head_dim=query.shape[2],
            block_size=k_cache.shape[1],
            window=sliding_window or 0,
            scale=scale,
        )
        self._lib.paged_decode_f32(ctypes.byref(args), metadata.num_decodes, _threads())

    def _write_kv(
        self, kv_cache: KVCache, key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor
    ) -> None:
        k_cache, v_cache = kv_cache
        key, value, slots = _rows_contiguous(key), _rows_contiguous(value), _int64(slots)
        self._lib.write_kv_f32(
            key.data_ptr(),
            key.stride(0),
            value.data_ptr(),
            value.stride(0),
            slots.data_ptr(),
            key.shape[0],
            k_cache.data_ptr(),
            v_cache.data_ptr(),
            key.shape[1] * key.shape[2],
        )


def _kernel_supports(tensors: tuple[torch.Tensor, ...]) -> bool:
    """float32 on the CPU, head_dim a multiple of 8, caches contiguous: (q, k, v, k/v cache)."""
    return (
        all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and tensors[0].shape[-1] % 8 == 0
        and all(t.is_contiguous() for t in tensors[3:])
    )


def _rows_contiguous(x: torch.Tensor) -> torch.Tensor:
    """x [T, heads, head_dim] with each row's heads packed (any row stride), as the kernels
    read it; q/k/v split from the fused projection already are, so this rarely copies."""
    if x.stride(2) == 1 and x.stride(1) == x.shape[2]:
        return x
    return x.contiguous()


def _int64(x: torch.Tensor) -> torch.Tensor:
    """The runner builds int64 metadata already; guard the kernels' raw-pointer reads."""
    if x.dtype == torch.int64 and x.is_contiguous():
        return x
    return x.to(torch.int64).contiguous()


def _threads() -> int:
    """torch's intra-op thread count: the kernel runs on the same OpenMP pool."""
    return torch.get_num_threads()


def unavailable_reason() -> str | None:
    """None when the kernel builds and loads here (building it now, once per process)."""
    try:
        load_kernels()
    except KernelBuildError as exc:
        return str(exc)
    return None
