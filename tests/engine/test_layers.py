"""The building blocks shared by the native decoder models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.models.layers import CPU_VOCAB_SLICE, vocab_projection


@pytest.mark.parametrize("rows", [1, 2, 7, 32])
@pytest.mark.parametrize("vocab", [CPU_VOCAB_SLICE, 5 * CPU_VOCAB_SLICE + 37])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_vocab_projection_equals_one_linear(rows, vocab, dtype) -> None:
    """Sliced or whole, the LM head gives the single matmul's logits (the last slice
    partial when the vocabulary is not a multiple of the slice)."""
    g = torch.Generator().manual_seed(rows + vocab)
    hidden = torch.randn(rows, 96, generator=g).to(dtype)
    weight = torch.randn(vocab, 96, generator=g).to(dtype)
    with torch.inference_mode():
        logits = vocab_projection(hidden, weight)
    assert logits.shape == (rows, vocab) and logits.dtype == dtype
    torch.testing.assert_close(logits, F.linear(hidden, weight), atol=1e-4, rtol=1e-3)
