"""Linear layers packed for oneDNN (engine.models.packed_linear)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from engine_helpers import make_engine
from parity_helpers import build_tiny, make_engine_with
from torch import nn

from engine.models.layers import GatedMLP
from engine.models.packed_linear import PackedLinear, can_pack, pack_linears, padded_rows

needs_onednn = pytest.mark.skipif(
    not can_pack(torch.float32, torch.device("cpu")), reason="this torch has no oneDNN"
)


@needs_onednn
@pytest.mark.parametrize("shape", [(1, 96), (7, 96), (17, 96), (32, 96), (300, 96), (3, 7, 96)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_packed_linear_equals_f_linear(shape, with_bias) -> None:
    """Any number of rows (decode, prefill, a leading batch dim; 17, 300 and 21 rows run
    padded), with or without bias."""
    g = torch.Generator().manual_seed(len(shape) + shape[0])
    x = torch.randn(*shape, generator=g)
    weight = torch.randn(200, 96, generator=g)
    bias = torch.randn(200, generator=g) if with_bias else None
    with torch.inference_mode():
        y = PackedLinear(weight, bias)(x)
    assert y.shape == (*shape[:-1], 200)
    torch.testing.assert_close(y, F.linear(x, weight, bias), atol=1e-5, rtol=1e-5)


def test_padded_rows_are_few_and_close() -> None:
    """Few distinct row counts (one oneDNN primitive each), never more than 1/8 extra."""
    sizes = [padded_rows(rows) for rows in range(1, 4097)]
    assert sizes[:16] == list(range(1, 17)) and padded_rows(17) == 18 and padded_rows(33) == 36
    assert all(rows <= size <= rows * 9 / 8 for rows, size in enumerate(sizes, start=1))
    assert len(set(sizes)) == 15 + 8 * 8 + 1  # exact below 16, 8 per octave, 4,096


@needs_onednn
def test_packed_linear_reads_strided_rows() -> None:
    """Input that is a column slice of a wider tensor (q of a fused qkv, say)."""
    wide, weight = torch.randn(8, 192), torch.randn(64, 96)
    x = wide[:, 96:]
    with torch.inference_mode():
        torch.testing.assert_close(PackedLinear(weight, None)(x), F.linear(x, weight))


@needs_onednn
def test_pack_linears_swaps_every_linear_and_keeps_the_output() -> None:
    torch.manual_seed(0)
    mlp = GatedMLP(96, 160, bias=True, dtype=torch.float32).eval().requires_grad_(False)
    x = torch.randn(5, 96)
    expected = mlp(x)
    assert pack_linears(mlp) == 2
    assert not any(isinstance(m, nn.Linear) for m in mlp.modules())
    assert isinstance(mlp.gate_up_proj, PackedLinear) and isinstance(mlp.down_proj, PackedLinear)
    torch.testing.assert_close(mlp(x), expected, atol=1e-5, rtol=1e-5)


def test_pack_linears_leaves_other_dtypes_alone() -> None:
    mlp = GatedMLP(32, 48, bias=False, dtype=torch.bfloat16)
    assert not can_pack(torch.bfloat16, torch.device("cpu"))
    assert not can_pack(torch.float32, torch.device("cuda"))
    assert pack_linears(mlp) == 0
    assert isinstance(mlp.gate_up_proj, nn.Linear)


@needs_onednn
def test_engine_models_run_packed(llama, tmp_path) -> None:
    """A loaded float32 CPU model has no dense linear left; an untied head is packed in
    place, a tied one beside the embedding (which token lookups still read); their logits
    are the embedding's / head's matmul. (The parity tests compare these models with
    transformers.)"""
    qwen2_tied = build_tiny("qwen2_tied", tmp_path)
    models = ((make_engine(llama).model, False), (make_engine_with(qwen2_tied).model, True))
    for model, tied in models:
        assert not any(isinstance(m, nn.Linear) for m in model.modules())
        assert (model.lm_head is None) == tied and (model.tied_head is not None) == tied
        hidden = torch.randn(3, model.args.hidden_size)
        with torch.inference_mode():
            logits = model.compute_logits(hidden)
        if tied:
            torch.testing.assert_close(logits, F.linear(hidden, model.embed_tokens.weight))
        assert logits.shape == (3, model.vocab_size)
