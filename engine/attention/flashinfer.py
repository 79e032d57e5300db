"""Paged attention on CUDA with flashinfer (the `gpu` extra).

flashinfer is imported when the backend is constructed, never when this module is, so CPU-only
machines import it cleanly. Our per-layer cache (k_cache, v_cache), each [num_blocks,
block_size, num_kv_heads, head_dim], is flashinfer's NHD layout as a (k, v) tuple; a block is
a page. Each step `prepare` turns the block tables into flashinfer's page lists (indptr,
indices, last_page_len) for the decode rows and for the prefill spans; a wrapper is planned on
the first layer that asks for its (scale, window) and reused by the other layers. New K/V go
to the cache through our slot mapping, the same write as SDPA. flashinfer has no float32
kernels: a float32 model takes the SDPA path."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

from engine.attention.base import AttentionBackend, AttentionMetadata, KVCache, write_kv
from engine.attention.torch_sdpa import TorchSDPABackend

WORKSPACE_BYTES = 128 << 20
_DTYPES = (torch.float16, torch.bfloat16)


def unavailable_reason() -> str | None:
    """None when flashinfer can serve here: CUDA is up and the package imports."""
    if not torch.cuda.is_available():
        return "CUDA is not available"
    try:
        import flashinfer  # noqa: F401
    except ImportError as exc:
        return f"flashinfer does not import ({exc}); install the `gpu` extra"
    return None


@dataclass(frozen=True)
class _Pages:
    """One group of sequences (the decodes, or the prefills) in flashinfer's paged form."""

    rows: torch.Tensor  # [R] int64: the group's rows in the flattened batch (device)
    qo_indptr: torch.Tensor  # [N + 1] int32: row offsets within the group (host)
    indptr: torch.Tensor  # [N + 1] int32: page offsets into indices (host)
    indices: torch.Tensor  # [pages] int32: block ids, sequence after sequence (host)
    last_page_len: torch.Tensor  # [N] int32: tokens in each sequence's last block (host)


class FlashInferBackend(AttentionBackend):
    name = "flashinfer"

    def __init__(self) -> None:
        import flashinfer  # the CUDA library: imported here only

        self._flashinfer = flashinfer
        self._sdpa = TorchSDPABackend()
        self._workspace: torch.Tensor | None = None
        self._step: AttentionMetadata | None = None  # the metadata prepared last
        self._groups: dict[str, _Pages] = {}  # "decode" / "prefill" -> their pages
        self._wrappers: dict[tuple, Any] = {}  # (kind, scale, window) -> wrapper
        self._planned: set[tuple] = set()  # keys planned for the current step

    def prepare(self, metadata: AttentionMetadata) -> None:
        """Page lists for this step (one host copy of the decode tables); plans are made
        lazily per (scale, window) by the first layer that needs them."""
        self._step, self._planned = metadata, set()
        device = metadata.slot_mapping.device
        self._groups = {}
        if metadata.num_decodes:
            lens = metadata.decode_context_lens.tolist()
            tables = metadata.decode_block_tables.tolist()
            rows = metadata.decode_token_indices
            self._groups["decode"] = _pages(rows, tables, lens, [1] * len(lens), metadata)
        if metadata.prefills:
            spans = metadata.prefills
            rows = torch.cat(
                [torch.arange(s.token_start, s.token_start + s.query_len) for s in spans]
            ).to(device, non_blocking=True)
            tables = [s.block_ids.tolist() for s in spans]
            lens, qo = [s.context_len for s in spans], [s.query_len for s in spans]
            self._groups["prefill"] = _pages(rows, tables, lens, qo, metadata)

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
        if query.dtype not in _DTYPES or kv_cache[0].dtype not in _DTYPES:
            return self._sdpa.forward(
                query, key, value, kv_cache, metadata, scale=scale, sliding_window=sliding_window
            )
        if self._step is not metadata:  # a caller that skipped prepare()
            self.prepare(metadata)
        write_kv(kv_cache, key, value, metadata.slot_mapping)
        out = torch.empty_like(query)
        for kind, pages in self._groups.items():
            wrapper = self._wrapper(kind, pages, query, kv_cache, scale, sliding_window)
            out[pages.rows] = wrapper.run(query[pages.rows], kv_cache)
        return out

    def _wrapper(
        self,
        kind: str,
        pages: _Pages,
        query: torch.Tensor,
        kv_cache: KVCache,
        scale: float,
        sliding_window: int | None,
    ) -> Any:
        key = (kind, scale, sliding_window)
        wrapper = self._wrappers.get(key)
        if wrapper is None:
            wrapper = self._wrappers[key] = self._new_wrapper(kind, query.device)
        if key not in self._planned:
            _plan(wrapper, kind, pages, query, kv_cache, scale, sliding_window)
            self._planned.add(key)
        return wrapper

    def _new_wrapper(self, kind: str, device: torch.device) -> Any:
        if self._workspace is None:  # shared by every wrapper; they run one at a time
            self._workspace = torch.zeros(WORKSPACE_BYTES, dtype=torch.uint8, device=device)
        if kind == "decode":
            return self._flashinfer.BatchDecodeWithPagedKVCacheWrapper(self._workspace, "NHD")
        return self._flashinfer.BatchPrefillWithPagedKVCacheWrapper(self._workspace, "NHD")


def _pages(
    rows: torch.Tensor,
    tables: list[list[int]],
    lens: list[int],
    query_lens: list[int],
    metadata: AttentionMetadata,
) -> _Pages:
    block_size = metadata.block_size
    counts = [-(-n // block_size) for n in lens]
    indices = [b for table, count in zip(tables, counts, strict=True) for b in table[:count]]
    return _Pages(
        rows=rows,
        qo_indptr=_int32(itertools.accumulate(query_lens, initial=0)),
        indptr=_int32(itertools.accumulate(counts, initial=0)),
        indices=_int32(indices),
        last_page_len=_int32(n - (c - 1) * block_size for n, c in zip(lens, counts, strict=True)),
    )


def _plan(
    wrapper: Any,
    kind: str,
    pages: _Pages,
    query: torch.Tensor,
    kv_cache: KVCache,
    scale: float,
    sliding_window: int | None,
) -> None:
    """flashinfer's window_left counts the keys before the query: ours minus one."""
    _, block_size, num_kv_heads, head_dim = kv_cache[0].shape
    common = dict(
        sm_scale=scale,
        window_left=-1 if sliding_window is None else sliding_window - 1,
        q_data_type=query.dtype,
        kv_data_type=kv_cache[0].dtype,
    )
    if kind == "decode":
        wrapper.plan(
            pages.indptr, pages.indices, pages.last_page_len,
            query.shape[1], num_kv_heads, head_dim, block_size, **common,
        )  # fmt: skip
    else:  # causal with the queries as the last rows of the context: chunks see earlier KV
        wrapper.plan(
            pages.qo_indptr, pages.indptr, pages.indices, pages.last_page_len,
            query.shape[1], num_kv_heads, head_dim, block_size, causal=True, **common,
        )  # fmt: skip


def _int32(values) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.int32)
