"""Linear layers whose weight is packed once, at load, for oneDNN's matmul (CPU, float32).

On the 2-core AMD EPYC we benchmark on, MKL's sgemm (what `F.linear` runs) takes 1.7-3.2x
as long as oneDNN's matmul on a weight reordered once into oneDNN's blocked layout (2
threads, weights rotated beyond the caches, medians): at 32 rows,
768 -> 1,280 took 1,136 vs 657 us, 768 -> 4,096 4,359 vs 1,546 (2,512 sliced), 2,048 -> 768
1,709 vs 786, the 32k-row LM head 31.1 vs 9.8 ms (18.4 sliced); one row and 512 rows gain
too. Outputs agree with `F.linear` to ~1e-6 relative (the order of accumulation).

`pack_linears(model)` swaps every `nn.Linear` of a native model for a `PackedLinear` (the
dense weight is dropped, so memory stays flat) and packs a tied LM head as a copy beside the
token embedding (which lookups still read). Elsewhere (CUDA, other dtypes, a torch without
oneDNN) nothing changes.

oneDNN builds (JIT-compiles) one primitive per input shape and keeps it in two caches (its
own and PyTorch's ideep one, 1,024 entries each by default), ~0.6 MiB apiece; building one
costs ~1-3 ms. A step's row count changes with every batch, so rows are padded up to a few
sizes (`padded_rows`: at most 1/8 more) and both caches are capped (set before the first
oneDNN call; a value in the environment wins): bounded memory, and a warm server reuses its
primitives."""

from __future__ import annotations

import os

import structlog
import torch
from torch import nn

log = structlog.get_logger(__name__)

PRIMITIVE_CACHE_ENTRIES = 256
for _variable in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
    os.environ.setdefault(_variable, str(PRIMITIVE_CACHE_ENTRIES))

# The row count oneDNN tunes the packed layout for: a decode batch. Packed for 32 rows, the
# layout ran within 15 % of the one packed for the actual count at 1 and 512 rows, and faster
# at 32 (768 -> 4,096: 1,546 vs 1,761 us packed for 1 row).
PACK_FOR_ROWS = 32


def padded_rows(rows: int) -> int:
    """The row count a matmul of `rows` rows runs at: exact below 16, then rounded up to
    a multiple of 1/8 of its power of two (16, 18, ..., 32, 36, ..., 64, 72, ...): 8 sizes
    per octave, at most 12.5 % more rows (~6 % on average)."""
    if rows < 16:
        return rows
    step = 1 << (rows.bit_length() - 4)
    return -(-rows // step) * step


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
        rows = x.reshape(-1, self.in_features)
        count = rows.shape[0]
        padded = padded_rows(count)
        if padded != count:
            rows = torch.cat([rows, rows.new_zeros(padded - count, self.in_features)])
        out = torch.ops.mkldnn._linear_pointwise(rows, self.packed, self.bias, "none", [], "")
        return out[:count].view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, oneDNN"


def pack_linears(model: nn.Module) -> int:
    """Swap every nn.Linear of `model` for a PackedLinear, in place, and pack its tied LM
    head (`model.tied_head_weight()`, when the model has one) into `model.tied_head`.
    Returns how many weights were packed; 0 where packing does not apply."""
    first = next(model.parameters(), None)
    if first is None or not can_pack(first.dtype, first.device):
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
