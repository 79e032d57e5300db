"""Linear layers whose weight is packed once, at load, for oneDNN's matmul (CPU, float32).

On the 2-core AMD EPYC we benchmark on, MKL's sgemm (what `F.linear` runs) reaches a third
to two thirds of the speed of oneDNN's matmul on a weight reordered into oneDNN's blocked
layout (benchmarks/linear_bench.py, 2 threads, weights beyond the caches): at 32 rows,
768 -> 1,280 took 1,136 vs 657 us, 768 -> 4,096 4,359 vs 1,546 (2,512 sliced), 2,048 -> 768
1,709 vs 786, the 32k-row LM head 31.1 vs 9.8 ms (18.4 sliced); one row and 512 rows gain
too. Outputs agree with `F.linear` to ~1e-6 relative (the order of accumulation).

`pack_linears(model)` swaps every `nn.Linear` of a native model for a `PackedLinear` (the
dense weight is dropped, so memory stays flat) and packs a tied LM head as a copy beside the
token embedding (which lookups still read). Elsewhere (CUDA, other dtypes, a torch without
oneDNN) nothing changes."""

from __future__ import annotations

import structlog
import torch
from torch import nn

log = structlog.get_logger(__name__)

# The row count oneDNN tunes the packed layout for: a decode batch. Packed for 32 rows, the
# layout ran within 15 % of the one packed for the actual count at 1 and 512 rows, and faster
# at 32 (768 -> 4,096: 1,546 vs 1,761 us packed for 1 row).
PACK_FOR_ROWS = 32


def can_pack(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether linears of this dtype on this device run through packed oneDNN weights."""
    return (
        device.type == "cpu"
        and dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


class PackedLinear(nn.Module):
    """y = x @ weight^T + bias, with weight held in oneDNN's layout (x: [..., in])."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), PACK_FOR_ROWS)
        self.bias = None if bias is None else bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, oneDNN"


def pack_linears(model: nn.Module) -> int:
    """Swap every nn.Linear of `model` for a PackedLinear, in place, and pack its tied LM
    head (`model.tied_head_weight()`, when the model has one) into `model.tied_head`.
    Returns how many weights were packed; 0 where packing does not apply."""
    params = list(model.parameters())
    if not params or not can_pack(params[0].dtype, params[0].device):
        return 0
    packed = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, PackedLinear(child.weight, child.bias))
                packed += 1
    tied = getattr(model, "tied_head_weight", None)
    weight = tied() if tied is not None else None
    if weight is not None:
        model.tied_head = PackedLinear(weight, None)
        packed += 1
    log.info("linear weights packed for oneDNN", weights=packed)
    return packed
