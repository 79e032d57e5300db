"""Building blocks shared by the native decoder models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.cpu_ops import add_rms_norm, rms_norm, silu_mul

# Output rows of the weight per matmul of a wide CPU projection (the LM head, the fused
# gate/up): MKL runs x @ W^T for a ~32k-row W at ~60% of the speed it reaches on 1k-row
# slices of it, and a 4k-row W ~20% slower (2 threads, 4-256 rows of x; measured with
# benchmarks/linear_bench.py and in decode steps). One row of x is a GEMV, as fast whole.
# (Float32 CPU models run packed oneDNN weights instead, engine.models.packed_linear; this
# serves the other CPU dtypes and a torch without oneDNN.)
CPU_SLICE_ROWS = 1024


def sliced_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """x [N, d] @ weight[M, d]^T (+ bias) -> [N, M]; on the CPU, in slices of weight's rows."""
    rows, width = x.shape[0], weight.shape[0]
    if x.device.type != "cpu" or rows < 2 or width <= 2 * CPU_SLICE_ROWS:
        return F.linear(x, weight, bias)
    out = torch.empty(rows, width, dtype=x.dtype)
    for start in range(0, width, CPU_SLICE_ROWS):
        stop = min(start + CPU_SLICE_ROWS, width)
        w, o = weight[start:stop].t(), out[:, start:stop]
        if bias is None:
            torch.matmul(x, w, out=o)
        else:  # the bias inside the matmul, as F.linear adds it (one rounding)
            torch.addmm(bias[start:stop], x, w, out=o)
    return out


class SlicedLinear(nn.Linear):
    """nn.Linear computed by sliced_linear (for the wide projections)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sliced_linear(x, self.weight, self.bias)


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 like the reference implementation."""

    def __init__(self, hidden_size: int, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size, dtype=dtype))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)

    def add_norm(self, hidden: torch.Tensor, delta: torch.Tensor | None) -> torch.Tensor:
        """The residual stream's step: hidden += delta in place, then its norm."""
        return add_rms_norm(hidden, delta, self.weight, self.eps)


class GatedMLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)), with gate and up fused into one (sliced) matmul."""

    def __init__(self, hidden: int, intermediate: int, bias: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.gate_up_proj = SlicedLinear(hidden, 2 * intermediate, bias=bias, dtype=dtype)
        self.down_proj = nn.Linear(intermediate, hidden, bias=bias, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(silu_mul(self.gate_up_proj(x)))
