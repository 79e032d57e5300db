"""The building blocks shared by the native decoder models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.models.layers import CPU_SLICE_ROWS, sliced_linear


@pytest.mark.parametrize("rows", [1, 2, 7, 32])
@pytest.mark.parametrize("vocab", [CPU_SLICE_ROWS, 5 * CPU_SLICE_ROWS + 37])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_bias", [False, True])
def test_sliced_linear_equals_one_linear(rows, vocab, dtype, with_bias) -> None:
    """Sliced or whole, a projection gives the single matmul's result (the last slice
    partial when the width is not a multiple of the slice), its bias added."""
    g = torch.Generator().manual_seed(rows + vocab)
    hidden = torch.randn(rows, 96, generator=g).to(dtype)
    weight = torch.randn(vocab, 96, generator=g).to(dtype)
    bias = torch.randn(vocab, generator=g).to(dtype) if with_bias else None
    with torch.inference_mode():
        logits = sliced_linear(hidden, weight, bias)
    assert logits.shape == (rows, vocab) and logits.dtype == dtype
    torch.testing.assert_close(logits, F.linear(hidden, weight, bias), atol=1e-4, rtol=1e-3)
