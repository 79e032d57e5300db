"""Batched sampling: one call per step over the logits of every sampling sequence.

All-greedy batches take argmax and touch no RNG. Otherwise: min_tokens masking,
temperature, top-k/top-p (one sort, skipped when unused), then the exponential race
(argmax of probs / Exp(1) noise), which samples from probs exactly. Unseeded rows draw
their noise in one batched call; a seeded request draws from its own generator, advanced
only by its own steps, so it yields the same tokens whatever else is in the batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.sampling_params import SamplingParams
from engine.scheduler import ScheduledSequence

_TINY = 1e-20  # floor for the exponential noise (never divide by zero)


@dataclass(frozen=True)
class SamplingTensors:
    """Per-row parameters of one step, built once from the sampling sequences."""

    all_greedy: bool
    greedy: torch.Tensor  # [N] bool
    temperature: torch.Tensor  # [N, 1]; 1.0 on greedy rows
    top_k: torch.Tensor | None  # [N] int64, vocab size where off; None when no row uses it
    top_p: torch.Tensor | None  # [N] float; None when no row uses it
    seeded_rows: list[tuple[int, torch.Generator]]


class Sampler:
    def __init__(
        self, vocab_size: int, eos_token_ids: tuple[int, ...], device: torch.device, seed: int = 0
    ) -> None:
        self.vocab_size = vocab_size
        self.eos_token_ids = eos_token_ids
        self.device = device
        self._generator = torch.Generator(device=device)
        self._generator.manual_seed(seed)
        self._request_generators: dict[str, torch.Generator] = {}

    def add_request(self, request_id: str, params: SamplingParams) -> None:
        if params.seed is not None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(params.seed)
            self._request_generators[request_id] = generator

    def remove_request(self, request_id: str) -> None:
        self._request_generators.pop(request_id, None)

    @torch.inference_mode()
    def sample(self, logits: torch.Tensor, seqs: list[ScheduledSequence]) -> list[int]:
        """logits [N, V] (one row per sampling sequence, in order) -> N token ids."""
        if not seqs:
            return []
        self._mask_stop_tokens(logits, seqs)
        tensors = self.prepare(seqs)
        if tensors.all_greedy:
            return logits.argmax(dim=-1).tolist()
        greedy_tokens = logits.argmax(dim=-1)
        scaled = apply_top_k_top_p(logits / tensors.temperature, tensors.top_k, tensors.top_p)
        sampled = self._exponential_race(scaled.softmax(dim=-1), tensors.seeded_rows)
        return torch.where(tensors.greedy, greedy_tokens, sampled).tolist()

    def prepare(self, seqs: list[ScheduledSequence]) -> SamplingTensors:
        params = [s.sampling_params for s in seqs]
        greedy = [p.is_greedy for p in params]
        temperature = [1.0 if g else p.temperature for g, p in zip(greedy, params, strict=True)]
        top_k = [p.top_k if p.uses_top_k else self.vocab_size for p in params]
        top_p = [p.top_p for p in params]
        return SamplingTensors(
            all_greedy=all(greedy),
            greedy=self._tensor(greedy, torch.bool),
            temperature=self._tensor(temperature, torch.float32).unsqueeze(1),
            top_k=self._tensor(top_k, torch.int64) if any(p.uses_top_k for p in params) else None,
            top_p=self._tensor(top_p, torch.float32) if any(p.uses_top_p for p in params) else None,
            seeded_rows=[
                (row, self._request_generators[seq.request_id])
                for row, seq in enumerate(seqs)
                if seq.request_id in self._request_generators
            ],
        )

    def _mask_stop_tokens(self, logits: torch.Tensor, seqs: list[ScheduledSequence]) -> None:
        """Below min_tokens, EOS (unless ignore_eos) and stop token ids cannot be sampled."""
        rows: list[int] = []
        cols: list[int] = []
        for row, seq in enumerate(seqs):
            params = seq.sampling_params
            if seq.num_output_tokens >= params.min_tokens:
                continue
            banned = set(params.stop_token_ids)
            if not params.ignore_eos:
                banned.update(self.eos_token_ids)
            rows += [row] * len(banned)
            cols += sorted(banned)
        if rows:
            logits[self._tensor(rows, torch.int64), self._tensor(cols, torch.int64)] = float("-inf")

    def _exponential_race(
        self, probs: torch.Tensor, seeded_rows: list[tuple[int, torch.Generator]]
    ) -> torch.Tensor:
        noise = torch.empty_like(probs)
        if len(seeded_rows) < probs.shape[0]:
            noise.exponential_(generator=self._generator)
        for row, generator in seeded_rows:
            noise[row].exponential_(generator=generator)
        return probs.div_(noise.clamp_min_(_TINY)).argmax(dim=-1)

    def _tensor(self, values: list, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype).to(self.device, non_blocking=True)


def apply_top_k_top_p(
    logits: torch.Tensor, top_k: torch.Tensor | None, top_p: torch.Tensor | None
) -> torch.Tensor:
    """Mask (-inf) tokens outside each row's top-k and top-p sets, with one sort.
    top_k: [N] (vocab size = off); top_p: [N] (1.0 = off). Ties with the k-th value stay."""
    if top_k is None and top_p is None:
        return logits
    sorted_logits, order = logits.sort(dim=-1)  # ascending
    if top_k is not None:
        kth = logits.shape[-1] - top_k.clamp(1, logits.shape[-1])
        threshold = sorted_logits.gather(-1, kth.unsqueeze(1))
        sorted_logits.masked_fill_(sorted_logits < threshold, float("-inf"))
    if top_p is not None:
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        outside = cumulative <= (1.0 - top_p).unsqueeze(1)
        outside[:, -1] = False  # the most likely token always stays
        sorted_logits.masked_fill_(outside, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)
