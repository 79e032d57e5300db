"""The element-wise steps of a decoder layer: the C path (CPU float32) and the torch path
give the reference arithmetic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.models import cpu_ops
from engine.models.rotary import apply_rotary


def reference_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x32 = x.double()
    return (weight.double() * x32 / torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).float()


@pytest.fixture(params=["native", "torch"])
def path(request, monkeypatch) -> str:
    if request.param == "torch":
        monkeypatch.setattr(cpu_ops, "_library", lambda: None)
    else:
        assert cpu_ops._library() is not None  # this machine has a C compiler
    return request.param


@pytest.mark.parametrize("rows", [1, 5, 300])  # 300 x 768 takes the parallel branch
@pytest.mark.parametrize("with_delta", [False, True])
def test_add_rms_norm(path, rows, with_delta) -> None:
    g = torch.Generator().manual_seed(rows)
    hidden = torch.randn(rows, 768, generator=g) * 3
    delta = torch.randn(rows, 768, generator=g) if with_delta else None
    weight = torch.randn(768, generator=g)
    expected_sum = hidden + delta if with_delta else hidden.clone()
    out = cpu_ops.add_rms_norm(hidden, delta, weight, 1e-6)
    torch.testing.assert_close(hidden, expected_sum, atol=0, rtol=0)  # added in place
    torch.testing.assert_close(
        out, reference_norm(expected_sum, weight, 1e-6), atol=1e-5, rtol=1e-5
    )


def test_add_rms_norm_in_bfloat16_takes_torch_ops() -> None:
    hidden = torch.randn(4, 64).bfloat16()
    delta, weight = torch.randn(4, 64).bfloat16(), torch.randn(64).bfloat16()
    expected = cpu_ops.rms_norm(hidden + delta, weight, 1e-5)
    out = cpu_ops.add_rms_norm(hidden, delta, weight, 1e-5)
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected)


@pytest.mark.parametrize("rows", [3, 200])
def test_rotate_half_in_place_on_q_and_k_of_a_fused_qkv(path, rows) -> None:
    heads, kv_heads, head_dim = 6, 2, 64
    g = torch.Generator().manual_seed(rows)
    qkv = torch.randn(rows, (heads + 2 * kv_heads) * head_dim, generator=g)
    angles = torch.rand(rows, head_dim // 2, generator=g) * 100
    cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
    front = qkv[:, : (heads + kv_heads) * head_dim].reshape(rows, heads + kv_heads, head_dim)
    expected = apply_rotary(front, cos, sin).reshape(rows, -1)
    v_before = qkv[:, (heads + kv_heads) * head_dim :].clone()
    cpu_ops.rotate_half_(qkv, heads + kv_heads, head_dim, cos, sin)
    torch.testing.assert_close(
        qkv[:, : (heads + kv_heads) * head_dim], expected, atol=1e-6, rtol=1e-5
    )
    assert torch.equal(qkv[:, (heads + kv_heads) * head_dim :], v_before)  # v untouched


@pytest.mark.parametrize("inter", [2048, 13])  # 13: the scalar tail after 8-lane vectors
def test_silu_mul(path, inter) -> None:
    g = torch.Generator().manual_seed(inter)
    gate_up = torch.randn(7, 2 * inter, generator=g) * 8
    gate_up[0, :4] = torch.tensor([-200.0, -90.0, 90.0, 200.0])  # e^-|x| underflows
    gate, up = gate_up.double().chunk(2, dim=-1)
    expected = (F.silu(gate) * up).float()
    torch.testing.assert_close(cpu_ops.silu_mul(gate_up), expected, atol=1e-5, rtol=1e-5)
