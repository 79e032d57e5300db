"""The padded batch a pooling model runs on, and what it returns.

Bidirectional encoders see a whole sequence at once, so a pooled request is computed in
one pass and keeps nothing afterwards: the batch is dense ([B, L], right-padded), not
paged. The scheduler groups requests of similar length, so little of it is padding."""

from __future__ import annotations

from typing import NamedTuple

import torch


class PaddedBatch(NamedTuple):
    input_ids: torch.Tensor  # [B, L] int64, right-padded with the model's pad id
    attention_mask: torch.Tensor  # [B, L] bool: True on real tokens
    token_type_ids: torch.Tensor | None  # [B, L] int64 segment ids (text pairs), or None
    lengths: torch.Tensor  # [B] int64 real tokens per row (on the batch's device)

    @property
    def is_padded(self) -> bool:
        """Whether any row is shorter than the batch (attention must then be masked)."""
        return not bool(self.attention_mask.all())


class EncoderOutput(NamedTuple):
    hidden: torch.Tensor  # [B, L, H] last hidden states (padding rows are garbage)
    # [B, num_labels] sequence-classification logits, for models with such a head.
    logits: torch.Tensor | None = None


def pad_batch(
    token_ids: list[list[int]],
    type_ids: list[list[int] | None],
    pad_id: int,
    device: torch.device,
    with_types: bool,
) -> PaddedBatch:
    """Rows right-padded to the longest; built on the host, moved in one copy each."""
    lengths = [len(ids) for ids in token_ids]
    width = max(lengths)
    ids = torch.full((len(token_ids), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(token_ids), width), dtype=torch.bool)
    types = torch.zeros((len(token_ids), width), dtype=torch.int64) if with_types else None
    for row, (tokens, segments) in enumerate(zip(token_ids, type_ids, strict=True)):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
        mask[row, : len(tokens)] = True
        if types is not None and segments is not None:
            types[row, : len(segments)] = torch.tensor(segments, dtype=torch.int64)
    return PaddedBatch(
        ids.to(device, non_blocking=True),
        mask.to(device, non_blocking=True),
        None if types is None else types.to(device, non_blocking=True),
        torch.tensor(lengths, dtype=torch.int64).to(device, non_blocking=True),
    )
