"""Batched logits processing: pure tensor functions over [N, V] logits, no Python loop
over the vocabulary. The sampler calls each only when some row of the step uses it."""

from __future__ import annotations

import torch

NEG_INF = float("-inf")
# The nucleus is first looked for among the most likely tokens; rows whose top-p mass
# lies beyond them fall back to a full sort (flat distributions only).
TOP_P_CANDIDATES = 64


def mask_tokens(logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> None:
    """logits[rows[i], cols[i]] = -inf."""
    logits.index_put_((rows, cols), torch.tensor(NEG_INF, device=logits.device))


def keep_only(logits: torch.Tensor, rows: torch.Tensor, allowed: torch.Tensor) -> None:
    """For each of `rows`, -inf outside its allowed set (allowed: [R, V] bool)."""
    if rows.numel() == logits.shape[0]:
        logits.masked_fill_(~allowed, NEG_INF)
        return
    selected = logits.index_select(0, rows).masked_fill_(~allowed, NEG_INF)
    logits.index_copy_(0, rows, selected)


def add_bias(
    logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor
) -> None:
    logits.index_put_((rows, cols), values, accumulate=True)


def apply_penalties(
    logits: torch.Tensor,
    rows: torch.Tensor,
    tokens: torch.Tensor,
    output_counts: torch.Tensor,
    repetition: torch.Tensor,
    frequency: torch.Tensor,
    presence: torch.Tensor,
) -> None:
    """vLLM's penalties on the (rows[i], tokens[i]) pairs: every token seen in a row's
    prompt or output, each once, with its occurrences in the output; the penalties [M] of
    each pair's row. Repetition: a positive logit is divided by it, a negative one
    multiplied. Frequency: minus penalty x count. Presence: minus penalty once for a token
    in the output. Sparse: the cost follows the tokens seen, not the vocabulary."""
    values = logits[rows, tokens]
    values = torch.where(values > 0, values / repetition, values * repetition)
    counts = output_counts.to(values.dtype)
    values -= frequency * counts + presence * (counts > 0).to(values.dtype)
    logits[rows, tokens] = values


def apply_min_p(logits: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """-inf where p < min_p * p_max (p from these, already temperature-scaled, logits);
    min_p [N] (0 = off)."""
    probs = logits.softmax(dim=-1)
    threshold = probs.amax(dim=-1, keepdim=True) * min_p.unsqueeze(1)
    return logits.masked_fill(probs < threshold, NEG_INF)


def apply_top_k_top_p(
    logits: torch.Tensor,
    top_k: torch.Tensor | None,
    top_p: torch.Tensor | None,
    max_top_k: int | None = None,
) -> torch.Tensor:
    """Mask (-inf) tokens outside each row's top-k and then top-p sets. top_k: [N] (vocab
    size = off), max_top_k its largest value in use (saves a host sync); top_p: [N] (1.0 =
    off). Ties with the threshold stay. On CPU, no full sort when the nucleus lies among
    the TOP_P_CANDIDATES most likely tokens."""
    if top_k is not None:
        logits = _top_k(logits, top_k, max_top_k)
    if top_p is not None:
        logits = _top_p(logits, top_p) if not logits.is_cuda else _top_p_sorted(logits, top_p)
    return logits


def _top_k(logits: torch.Tensor, top_k: torch.Tensor, largest: int | None) -> torch.Tensor:
    vocab = logits.shape[-1]
    k = top_k.clamp(1, vocab)
    largest = min(int(k.max()) if largest is None else largest, vocab)
    if largest >= vocab:
        values = logits.sort(dim=-1, descending=True).values
    else:
        values = logits.topk(largest, dim=-1).values
    kth = values.gather(-1, (k - 1).clamp_max(largest - 1).unsqueeze(1))
    kth = kth.masked_fill((k >= vocab).unsqueeze(1), NEG_INF)  # rows with top-k off
    return logits.masked_fill(logits < kth, NEG_INF)


def _top_p(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches p: every token with
    probability >= that set's least probability."""
    probs = logits.softmax(dim=-1)
    vocab = logits.shape[-1]
    threshold = torch.zeros(logits.shape[0], 1, dtype=probs.dtype, device=probs.device)
    sorted_probs = probs.topk(min(TOP_P_CANDIDATES, vocab), dim=-1).values
    active = top_p < 1.0  # rows at 1.0 keep every token
    covered = sorted_probs.sum(dim=-1) >= top_p
    rows = torch.arange(logits.shape[0], device=logits.device)
    for mask, source in ((active & covered, sorted_probs), (active & ~covered, None)):
        picked = rows[mask]
        if picked.numel() == 0:
            continue
        values = (
            source[picked]
            if source is not None
            else probs[picked].sort(dim=-1, descending=True).values
        )
        threshold[picked] = _nucleus_threshold(values, top_p[picked])
    return logits.masked_fill(probs < threshold, NEG_INF)


def _top_p_sorted(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """The same set with one full sort and no host sync (GPUs sort fast)."""
    probs = logits.softmax(dim=-1)
    sorted_probs = probs.sort(dim=-1, descending=True).values
    threshold = _nucleus_threshold(sorted_probs, top_p).masked_fill((top_p >= 1.0).unsqueeze(1), 0)
    return logits.masked_fill(probs < threshold, NEG_INF)


def _nucleus_threshold(sorted_probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """[R, 1]: the least probability of the smallest top set reaching mass p (descending
    sorted_probs); the last one when rounding keeps the sum below p."""
    cumulative = sorted_probs.cumsum(dim=-1)
    index = torch.searchsorted(cumulative, top_p.unsqueeze(1).to(cumulative.dtype))
    index = index.clamp_max(sorted_probs.shape[-1] - 1)
    return sorted_probs.gather(-1, index)
