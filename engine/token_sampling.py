"""Drawing one token per row from temperature-scaled logits, with min-p, top-k and
top-p, exactly, usually without touching the whole vocabulary twice.

The filters keep a row's most likely tokens, so the step first looks at each row's
CANDIDATES best tokens (one top-k): when a row's filters cut inside that window (a top-k
within it, a min-p or top-p threshold reached in it), the row samples among the window,
renormalised. Rows whose kept set reaches beyond it (flat distributions) take the dense
path: the same filters over the whole vocabulary (on CUDA every row does: a sort is
cheap there, and the split would sync with the host). Rows with no filter sample from the
whole softmax. Every row draws one uniform, by inverse CDF: unseeded rows from one batched
call, a seeded row from its own generator, so its tokens never depend on the batch."""

from __future__ import annotations

import torch

from engine.logits_processors import apply_min_p, apply_top_k_top_p

CANDIDATES = 64


def sample(
    scaled: torch.Tensor,
    top_k: torch.Tensor | None,
    max_top_k: int,
    top_p: torch.Tensor | None,
    min_p: torch.Tensor | None,
    generator: torch.Generator,
    seeded_rows: list[tuple[int, torch.Generator]],
) -> torch.Tensor:
    """scaled [N, V]; top_k [N] (V = off), top_p [N] (1 = off), min_p [N] (0 = off)."""
    uniform = draw_uniforms(scaled.shape[0], scaled.device, generator, seeded_rows)
    if top_k is None and top_p is None and min_p is None:
        return inverse_cdf(scaled.softmax(dim=-1), uniform)
    if scaled.is_cuda:  # GPUs sort fast; the window's row split would sync with the host
        all_rows = torch.arange(scaled.shape[0], device=scaled.device)
        return _dense(scaled, all_rows, top_k, max_top_k, top_p, min_p, uniform)
    window = min(max(CANDIDATES, max_top_k), scaled.shape[-1])
    values, ids = scaled.topk(window, dim=-1)
    weights = (values - values[:, :1]).exp()  # relative to each row's most likely token
    keep, covered = _window_filters(scaled, values, weights, top_k, top_p, min_p)
    tokens = ids.gather(1, inverse_cdf(weights * keep, uniform).unsqueeze(1)).squeeze(1)
    dense = (~covered).nonzero().squeeze(1)
    if dense.numel():
        tokens[dense] = _dense(scaled, dense, top_k, max_top_k, top_p, min_p, uniform)
    return tokens


def _window_filters(scaled, values, weights, top_k, top_p, min_p):
    """keep [N, W] within each row's window; covered [N]: the row's kept set lies in it.
    min-p and top-k need only weights relative to the best token; top-p needs the kept
    mass, whose total is known in the window once min-p or top-k cut inside it, and is
    otherwise the whole row's (summed only for those rows)."""
    n, width = values.shape
    positions = torch.arange(width, device=scaled.device)
    keep = torch.ones_like(weights, dtype=torch.bool)
    covered = torch.zeros(n, dtype=torch.bool, device=scaled.device)
    uncut = torch.ones(n, dtype=torch.bool, device=scaled.device)  # nothing removed yet
    if min_p is not None:
        keep &= weights >= min_p.unsqueeze(1)
        covered |= (min_p > 0) & (weights[:, -1] < min_p)
        uncut &= min_p <= 0  # a cut beyond the window leaves an unknown kept mass
    if top_k is not None:
        keep &= positions < top_k.unsqueeze(1)
        covered |= top_k <= width
    if top_p is None:
        return keep, covered
    active = top_p < 1.0
    kept = weights * keep
    total = kept.sum(dim=-1)
    whole = active & ~covered & uncut  # the nucleus may still lie in the window
    if whole.any():
        rows = whole.nonzero().squeeze(1)
        full = (scaled.index_select(0, rows) - values.index_select(0, rows)[:, :1]).exp()
        total = total.index_copy(0, rows, full.sum(dim=-1))
    cumulative = kept.cumsum(dim=-1) / total.unsqueeze(1)
    last = torch.searchsorted(cumulative, top_p.unsqueeze(1).to(cumulative.dtype))
    keep &= ~active.unsqueeze(1) | (positions <= last)
    covered |= active & (last.squeeze(1) < width) & (covered | uncut)
    return keep, covered


def _dense(scaled, rows, top_k, max_top_k, top_p, min_p, uniform) -> torch.Tensor:
    """The same filters over the whole vocabulary, for these rows."""

    def pick(values: torch.Tensor | None) -> torch.Tensor | None:
        return None if values is None else values.index_select(0, rows)

    logits = scaled.index_select(0, rows)
    if min_p is not None:
        logits = apply_min_p(logits, pick(min_p))
    logits = apply_top_k_top_p(logits, pick(top_k), pick(top_p), max_top_k or None)
    return inverse_cdf(logits.softmax(dim=-1), uniform.index_select(0, rows))


def draw_uniforms(
    rows: int,
    device: torch.device,
    generator: torch.Generator,
    seeded_rows: list[tuple[int, torch.Generator]],
) -> torch.Tensor:
    uniform = torch.empty(rows, dtype=torch.float64, device=device)
    if len(seeded_rows) < rows:
        uniform.uniform_(generator=generator)
    for row, own in seeded_rows:
        uniform[row] = torch.rand(1, dtype=torch.float64, generator=own, device=device)
    return uniform


def inverse_cdf(weights: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Per row, the first index whose cumulative weight exceeds u x total (weights need
    not be normalised). A zero-weight index is never drawn."""
    cdf = weights.cumsum(dim=-1, dtype=torch.float64)
    targets = (uniform * cdf[:, -1]).unsqueeze(1)
    return torch.searchsorted(cdf, targets, right=True).squeeze(1).clamp_max(weights.shape[-1] - 1)
