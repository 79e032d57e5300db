"""Pooling token states into outputs, and the activations after it — all on batch
tensors: one call per pooling kind per step, never a Python loop over tokens.

Sequence poolers (CLS, MEAN, LAST, MAX, MEAN_SQRT_LEN) give one vector per row; token
poolers (ALL, STEP) give a [tokens, H] matrix per row."""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

from engine.pooling.batch import PaddedBatch

SEQUENCE_POOLERS = ("CLS", "MEAN", "LAST", "MAX", "MEAN_SQRT_LEN")
TOKEN_POOLERS = ("ALL", "STEP")


def pool_sequences(kind: str, hidden: torch.Tensor, batch: PaddedBatch, rows: torch.Tensor):
    """[R, H] float32: one vector per row in `rows` (indices into the batch)."""
    if kind == "CLS":
        return hidden[rows, 0].float()
    lengths = batch.lengths[rows]
    if kind == "LAST":
        return hidden[rows, lengths - 1].float()
    states = hidden[rows].float()
    mask = batch.attention_mask[rows].unsqueeze(-1)
    if kind == "MAX":
        return states.masked_fill(~mask, float("-inf")).amax(dim=1)
    summed = (states * mask).sum(dim=1)
    if kind == "MEAN":
        return summed / lengths.unsqueeze(-1).clamp(min=1).to(summed.dtype)
    if kind == "MEAN_SQRT_LEN":
        return summed / lengths.unsqueeze(-1).to(summed.dtype).sqrt()
    raise ValueError(f"not a sequence pooler: {kind}")


def pool_tokens(
    hidden: torch.Tensor,
    batch: PaddedBatch,
    rows: list[int],
    step_tag_id: int | None = None,
    returned_token_ids: tuple[int, ...] | None = None,
) -> list[torch.Tensor]:
    """[tokens, H] float32 per row: every real token (ALL), or with `step_tag_id` only
    the positions holding that token, and with `returned_token_ids` only those columns
    (STEP, for process reward models)."""
    lengths = batch.lengths.tolist()
    out = []
    for row in rows:
        states = hidden[row, : lengths[row]].float()
        if step_tag_id is not None:
            states = states[batch.input_ids[row, : lengths[row]] == step_tag_id]
        if returned_token_ids:
            states = states[:, list(returned_token_ids)]
        out.append(states)
    return out


def finish_embeddings(
    vectors: torch.Tensor, settings: list[tuple[int | None, bool]]
) -> list[torch.Tensor]:
    """Rows of vectors [R, H] with each row's (dimensions, normalize): Matryoshka
    truncation, then L2 normalisation — batched over the rows that share settings."""
    out: list[torch.Tensor] = [vectors[0]] * len(settings)
    groups: dict[tuple[int | None, bool], list[int]] = defaultdict(list)
    for row, setting in enumerate(settings):
        groups[setting].append(row)
    for (dimensions, normalize), rows in groups.items():
        part = vectors if len(rows) == len(settings) else vectors[rows]
        if dimensions is not None:
            part = part[:, :dimensions]
        if normalize:
            part = F.normalize(part, p=2, dim=-1)
        for j, row in enumerate(rows):
            out[row] = part[j]
    return out


def finish_token_embeddings(states: torch.Tensor, dimensions: int | None, normalize: bool):
    """One row's [tokens, H]: truncation and normalisation per token."""
    if dimensions is not None:
        states = states[:, :dimensions]
    return F.normalize(states, p=2, dim=-1) if normalize else states


def finish_classifications(
    logits: torch.Tensor, activate: list[bool], multi_label: bool
) -> list[torch.Tensor]:
    """logits [R, C] -> per row softmax over the classes, or sigmoid per class (one class,
    or multi-label models); raw logits where the row's activation is off."""
    logits = logits.float()
    if len(logits) == 0:
        return []
    sigmoid = multi_label or logits.shape[-1] == 1
    activated = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, dim=-1)
    return [activated[row] if on else logits[row] for row, on in enumerate(activate)]
