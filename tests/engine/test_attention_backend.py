"""Every CPU backend vs dense causal attention, on a mixed batch built by the runner:
decodes, a later prefill chunk, a fresh prompt; GQA; with and without a sliding window."""

from __future__ import annotations

import math

import pytest
import torch

from engine.attention import available_backends, create_backend
from engine.model_runner import ModelRunner
from engine.sampling_params import SamplingParams
from engine.scheduler import ScheduledSequence, SchedulerOutput

HEADS, KV_HEADS, DIM, BLOCK = 4, 2, 8, 4


def _dense(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: range, window: int | None
) -> torch.Tensor:
    """Reference: each query (at an absolute position) over keys 0..position."""
    rows = []
    k = k.repeat_interleave(HEADS // KV_HEADS, dim=1)
    v = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
    for qi, pos in zip(q, positions, strict=True):
        lo = 0 if window is None else max(0, pos - window + 1)
        scores = torch.einsum("hd,khd->hk", qi, k[lo : pos + 1]) / math.sqrt(DIM)
        rows.append(torch.einsum("hk,khd->hd", scores.softmax(-1), v[lo : pos + 1]))
    return torch.stack(rows)


@pytest.mark.parametrize("backend", ["torch_sdpa", "cpu_paged"])
@pytest.mark.parametrize("window", [None, 5])
def test_paged_attention_matches_dense(backend: str, window: int | None) -> None:
    g = torch.Generator().manual_seed(0)
    # (start, new tokens): decode at 9, decode at 1, chunk 6..13, fresh prompt of 7.
    shapes = [(9, 1), (1, 1), (6, 8), (0, 7)]
    num_blocks = 24
    free = torch.randperm(num_blocks, generator=g).tolist()  # scattered block ids
    caches = [
        (
            torch.zeros(num_blocks, BLOCK, KV_HEADS, DIM),
            torch.zeros(num_blocks, BLOCK, KV_HEADS, DIM),
        )
    ]
    seqs, full = [], []
    for i, (start, n) in enumerate(shapes):
        total = start + n
        blocks = [free.pop() for _ in range(-(-total // BLOCK))]
        q, k, v = (torch.randn(total, h, DIM, generator=g) for h in (HEADS, KV_HEADS, KV_HEADS))
        for p in range(start):  # the context already in the cache
            slot = blocks[p // BLOCK], p % BLOCK
            caches[0][0][slot], caches[0][1][slot] = k[p], v[p]
        full.append((q, k, v, start, total))
        seqs.append(ScheduledSequence(str(i), [0] * n, start, blocks, True, SamplingParams(), 0))
    runner = ModelRunner(None, create_backend(backend), caches, BLOCK, torch.device("cpu"))
    meta = runner.prepare_inputs(SchedulerOutput(seqs, [])).attn_metadata
    assert meta.num_decodes == 2 and len(meta.prefills) == 2
    q_new, k_new, v_new = (torch.cat([f[j][f[3] : f[4]] for f in full]) for j in range(3))
    out = runner.backend.forward(
        q_new, k_new, v_new, caches[0], meta, scale=DIM**-0.5, sliding_window=window
    )
    row = 0
    for q, k, v, start, total in full:
        expected = _dense(q[start:], k, v, range(start, total), window)
        torch.testing.assert_close(out[row : row + total - start], expected, atol=1e-5, rtol=1e-5)
        row += total - start


def test_registry_is_lazy_and_rejects_unknown_names() -> None:
    assert {"torch_sdpa", "cpu_paged", "flashinfer"} <= set(available_backends())
    assert create_backend("torch_sdpa").name == "torch_sdpa"
    with pytest.raises(ValueError, match="torch_sdpa"):
        create_backend("no-such-backend")
