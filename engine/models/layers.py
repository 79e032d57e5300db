"""Building blocks shared by the native decoder models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Vocabulary rows per matmul of the CPU LM head: MKL runs x @ W^T for a ~32k-row W at ~60% of
# the speed it reaches on 1k-row slices of it (2 threads, 4-256 rows of x; measured with
# benchmarks/linear_bench.py). One row of x is a GEMV, as fast whole.
CPU_VOCAB_SLICE = 1024


def vocab_projection(hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """hidden [N, d] @ weight[V, d]^T -> logits [N, V]; on the CPU, in vocabulary slices."""
    rows, vocab = hidden.shape[0], weight.shape[0]
    if hidden.device.type != "cpu" or rows < 2 or vocab <= 2 * CPU_VOCAB_SLICE:
        return F.linear(hidden, weight)
    out = torch.empty(rows, vocab, dtype=hidden.dtype)
    for start in range(0, vocab, CPU_VOCAB_SLICE):
        stop = min(start + CPU_VOCAB_SLICE, vocab)
        torch.matmul(hidden, weight[start:stop].t(), out=out[:, start:stop])
    return out


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 like the reference implementation."""

    def __init__(self, hidden_size: int, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size, dtype=dtype))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class GatedMLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)), with gate and up fused into one matmul."""

    def __init__(self, hidden: int, intermediate: int, bias: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.gate_up_proj = nn.Linear(hidden, 2 * intermediate, bias=bias, dtype=dtype)
        self.down_proj = nn.Linear(intermediate, hidden, bias=bias, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)
