"""The flashinfer backend: it imports and declines cleanly without CUDA; on CUDA with
flashinfer installed (the `gpu` extra) it matches the torch_sdpa backend on a mixed batch."""

from __future__ import annotations

import importlib.util
import itertools

import pytest
import torch

from engine.attention import create_backend, default_backend
from engine.attention.base import AttentionMetadata, PrefillSpan

HAVE_FLASHINFER = torch.cuda.is_available() and importlib.util.find_spec("flashinfer") is not None
needs_flashinfer = pytest.mark.skipif(not HAVE_FLASHINFER, reason="needs CUDA and flashinfer")


def test_module_imports_without_flashinfer_and_cuda_falls_back() -> None:
    module = importlib.import_module("engine.attention.flashinfer")
    if not HAVE_FLASHINFER:
        assert module.unavailable_reason() is not None
        assert default_backend(torch.device("cuda")) == "torch_sdpa"


def _mixed_batch(shapes, block_size, heads, kv_heads, dim, dtype, device):
    """(start, new tokens) per sequence: cached context [0, start) written already, the
    new rows' q/k/v returned flattened, metadata as the runner builds it."""
    g = torch.Generator().manual_seed(7)
    counts = [-(-(s + n) // block_size) for s, n in shapes]
    num_blocks = sum(counts) + 2
    free = torch.randperm(num_blocks, generator=g).tolist()
    tables = [[free.pop() for _ in range(c)] for c in counts]
    shape = (num_blocks, block_size, kv_heads, dim)
    cache = (torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    rows = sum(n for _, n in shapes)
    q = torch.randn(rows, heads, dim, generator=g)
    k, v = (torch.randn(rows, kv_heads, dim, generator=g) for _ in range(2))
    starts = list(itertools.accumulate((n for _, n in shapes), initial=0))
    slots = [
        tables[i][p // block_size] * block_size + p % block_size
        for i, (s, n) in enumerate(shapes)
        for p in range(s, s + n)
    ]
    width = max(counts)
    padded = torch.tensor([t + [0] * (width - len(t)) for t in tables], device=device)
    decodes = [i for i, (_, n) in enumerate(shapes) if n == 1]
    lens = [s + n for s, n in shapes]

    def on(x: torch.Tensor) -> torch.Tensor:
        return x.to(device)

    metadata = AttentionMetadata(
        num_tokens=rows,
        block_size=block_size,
        slot_mapping=on(torch.tensor(slots)),
        query_start_loc=on(torch.tensor(starts, dtype=torch.int32)),
        context_lens=on(torch.tensor(lens, dtype=torch.int32)),
        block_tables=padded,
        decode_token_indices=on(torch.tensor([starts[i] for i in decodes])),
        decode_block_tables=padded[on(torch.tensor(decodes, dtype=torch.int64))],
        decode_context_lens=on(torch.tensor([lens[i] for i in decodes])),
        max_decode_context_len=max((lens[i] for i in decodes), default=0),
        prefills=[
            PrefillSpan(starts[i], n, s + n, padded[i, : counts[i]])
            for i, (s, n) in enumerate(shapes)
            if n > 1
        ],
    )
    tensors = [t.to(device, dtype) for t in (q, k, v, *cache)]
    return tensors[:3], tuple(tensors[3:]), metadata


@pytest.mark.gpu
@needs_flashinfer
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("window", [None, 9])
@pytest.mark.parametrize(("heads", "kv_heads"), [(8, 8), (12, 4), (8, 2)])
def test_flashinfer_matches_torch_sdpa(dtype, window, heads, kv_heads) -> None:
    # decodes at 17 and 1, a chunk 6..40 over earlier context, a fresh prompt, a long decode
    shapes = [(16, 1), (0, 1), (6, 35), (0, 23), (300, 1)]
    (q, k, v), cache, metadata = _mixed_batch(shapes, 16, heads, kv_heads, 64, dtype, "cuda")
    results = []
    for name in ("flashinfer", "torch_sdpa"):
        backend = create_backend(name)
        backend.prepare(metadata)
        own_cache = tuple(c.clone() for c in cache)
        out = backend.forward(q, k, v, own_cache, metadata, scale=0.125, sliding_window=window)
        results.append((out, own_cache))
    (out, cache_a), (expected, cache_b) = results
    torch.testing.assert_close(cache_a, cache_b, atol=0, rtol=0)  # the same K/V writes
    torch.testing.assert_close(out.float(), expected.float(), atol=2e-2, rtol=2e-2)


@pytest.mark.gpu
@needs_flashinfer
def test_flashinfer_is_the_cuda_default_and_float32_takes_sdpa() -> None:
    assert default_backend(torch.device("cuda")) == "flashinfer"
    (q, k, v), cache, metadata = _mixed_batch([(5, 1), (0, 7)], 4, 4, 2, 64, torch.float32, "cuda")
    backend, reference = create_backend("flashinfer"), create_backend("torch_sdpa")
    out = backend.forward(q, k, v, tuple(c.clone() for c in cache), metadata, scale=0.125)
    expected = reference.forward(q, k, v, cache, metadata, scale=0.125)
    torch.testing.assert_close(out, expected)
