"""Batched sampling: one call per step over the logits of every sampling sequence.

The step's parameters become batch tensors once (sampling_batch.py); each feature runs
only when some row uses it. Order, as vLLM's: raw logprobs (log_softmax of the model's
logits, kept for the rows that return logprobs) -> grammar bitmask -> allowed tokens ->
banned tokens (min_tokens, bad words) -> logit bias -> penalties -> greedy argmax ->
temperature -> min-p -> top-k/top-p -> one draw per row by inverse CDF. All-greedy steps
take argmax and touch no RNG. A seeded request draws from its own generator, advanced
only by its own steps, so it yields the same tokens whatever else is in the batch.
Beam-search rows return their best candidates instead of a token (beam_search.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine import logits_processors as lp
from engine import token_sampling
from engine.beam_search import BeamCandidates
from engine.logits_processors import apply_top_k_top_p
from engine.logprobs import position_logprobs
from engine.outputs import PositionLogprobs
from engine.sampling_batch import Penalties, SamplingBatch, banned_tokens, tensor
from engine.sampling_params import MAX_LOGIT_BIAS, SamplingParams
from engine.scheduler_output import ScheduledSequence
from engine.structured.manager import StructuredOutputs
from engine.token_history import TokenHistory

__all__ = ["Sampler", "SamplerOutput", "apply_top_k_top_p"]


@dataclass(frozen=True)
class SamplerOutput:
    token_ids: list[int | None]  # one per row; None for beam rows
    logprobs: list[PositionLogprobs | None]  # one per row, for rows that return logprobs
    beam_candidates: dict[str, BeamCandidates]  # beam rows, by sequence id


@dataclass
class _RequestState:
    """Per-request tensors built once, at add_request, when the request uses them."""

    generator: torch.Generator | None = None
    allowed: torch.Tensor | None = None  # [V] bool
    bias: tuple[torch.Tensor, torch.Tensor] | None = None  # (ids, values)


class Sampler:
    def __init__(
        self, vocab_size: int, eos_token_ids: tuple[int, ...], device: torch.device, seed: int = 0
    ) -> None:
        self.vocab_size = vocab_size
        self.eos_token_ids = eos_token_ids
        self.device = device
        self._generator = torch.Generator(device=device)
        self._generator.manual_seed(seed)
        self._states: dict[str, _RequestState] = {}
        self._history: TokenHistory | None = None  # made when a request uses penalties
        self.structured = StructuredOutputs(vocab_size, device)

    def add_request(self, request_id: str, params: SamplingParams) -> None:
        state = _RequestState()
        if params.seed is not None:
            state.generator = torch.Generator(device=self.device)
            state.generator.manual_seed(params.seed)
        if params.allowed_token_ids is not None:
            state.allowed = torch.zeros(self.vocab_size, dtype=torch.bool, device=self.device)
            state.allowed[list(params.allowed_token_ids)] = True
        if params.logit_bias:
            ids, values = zip(*params.logit_bias, strict=True)
            clamped = [max(-MAX_LOGIT_BIAS, min(MAX_LOGIT_BIAS, v)) for v in values]
            state.bias = (self._tensor(list(ids), torch.int64), self._tensor(clamped))
        if params.structured_output is not None:
            self.structured.add_request(request_id, params.structured_output)
        self._states[request_id] = state

    def remove_request(self, request_id: str) -> None:
        self._states.pop(request_id, None)
        self.structured.remove_request(request_id)
        if self._history is not None:
            self._history.remove(request_id)

    def grammar_finished(self, request_id: str) -> bool:
        return self.structured.is_finished(request_id)

    @torch.inference_mode()
    def sample(self, logits: torch.Tensor, seqs: list[ScheduledSequence]) -> list[int | None]:
        """logits [N, V] (one row per sampling sequence, in order) -> N token ids."""
        return self.run(logits, seqs).token_ids

    @torch.inference_mode()
    def run(self, logits: torch.Tensor, seqs: list[ScheduledSequence]) -> SamplerOutput:
        if not seqs:
            return SamplerOutput([], [], {})
        batch = self.prepare(seqs)
        raw = None
        if batch.logprob_rows:  # raw logprobs: before any processing
            raw = logits.index_select(0, self._rows(batch.logprob_rows)).log_softmax(dim=-1)
        if batch.needs_processing:
            self._process(logits, seqs, batch)
        tokens = self._choose(logits, batch)
        candidates = self._beam_candidates(logits, seqs, batch)
        token_ids: list[int | None] = tokens.tolist()
        for row in batch.beam_rows:
            token_ids[row] = None
        for row in batch.grammar_rows:
            self.structured.accept(seqs[row].request_id, token_ids[row])
        return SamplerOutput(token_ids, self._logprobs(raw, tokens, seqs, batch), candidates)

    @torch.inference_mode()
    def process_logits(self, logits: torch.Tensor, seqs: list[ScheduledSequence]) -> None:
        """Every logits processor of the step, in place (no temperature, no sampling)."""
        batch = self.prepare(seqs)
        if batch.needs_processing:
            self._process(logits, seqs, batch)

    def prepare(self, seqs: list[ScheduledSequence]) -> SamplingBatch:
        params = [s.sampling_params for s in seqs]
        greedy = [p.is_greedy or p.use_beam_search for p in params]
        sampling = not all(greedy)
        banned = [(row, banned_tokens(s, self.eos_token_ids)) for row, s in enumerate(seqs)]
        banned = [(row, cols) for row, cols in banned if cols]
        return SamplingBatch(
            num_rows=len(seqs),
            greedy=greedy,
            all_greedy=not sampling,
            temperature=self._temperature(params, greedy) if sampling else None,
            top_k=self._per_row(params, "uses_top_k", lambda p: p.top_k, self.vocab_size, sampling),
            max_top_k=max((p.top_k for p in params if p.uses_top_k), default=0),
            top_p=self._per_row(params, "uses_top_p", lambda p: p.top_p, 1.0, sampling),
            min_p=self._per_row(params, "uses_min_p", lambda p: p.min_p, 0.0, sampling),
            penalties=self._penalties(seqs),
            banned=self._flatten(banned) if banned else None,
            bias=self._bias(seqs),
            allowed=self._allowed(seqs),
            grammar_rows=[r for r, s in enumerate(seqs) if self.structured.has(s.request_id)],
            logprob_rows=[
                r for r, p in enumerate(params) if p.logprobs is not None and not p.use_beam_search
            ],
            beam_rows=[r for r, p in enumerate(params) if p.use_beam_search],
            seeded_rows=[
                (row, state.generator)
                for row, s in enumerate(seqs)
                if (state := self._states.get(s.request_id)) and state.generator is not None
            ],
        )

    # -- processing ----------------------------------------------------------------------
    def _process(
        self, logits: torch.Tensor, seqs: list[ScheduledSequence], batch: SamplingBatch
    ) -> None:
        if batch.grammar_rows:
            ids = [seqs[r].request_id for r in batch.grammar_rows]
            self.structured.apply(logits, batch.grammar_rows, ids)
        if batch.allowed is not None:
            lp.keep_only(logits, *batch.allowed)
        if batch.banned is not None:
            lp.mask_tokens(logits, *batch.banned)
        if batch.bias is not None:
            lp.add_bias(logits, *batch.bias)
        if batch.penalties is not None:
            pen = batch.penalties
            lp.apply_penalties(
                logits, pen.rows, pen.tokens, pen.output_counts, pen.repetition, pen.frequency,
                pen.presence,
            )  # fmt: skip
        if batch.grammar_rows or batch.allowed is not None or batch.banned is not None:
            self._end_dead_rows(logits)

    def _end_dead_rows(self, logits: torch.Tensor) -> None:
        """A row whose masks left no token (a complete grammar while min_tokens bans EOS,
        allowed tokens all banned) ends: EOS is its only choice."""
        dead = logits.amax(dim=-1) == float("-inf")
        if self.eos_token_ids and bool(dead.any()):
            logits[dead, self.eos_token_ids[0]] = 0.0

    def _choose(self, logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        if batch.all_greedy:
            return logits.argmax(dim=-1)
        sampled = token_sampling.sample(
            logits / batch.temperature, batch.top_k, batch.max_top_k, batch.top_p, batch.min_p,
            self._generator, batch.seeded_rows,
        )  # fmt: skip
        if not any(batch.greedy):
            return sampled
        greedy_tokens = logits.argmax(dim=-1)
        return torch.where(self._tensor(batch.greedy, torch.bool), greedy_tokens, sampled)

    def _beam_candidates(
        self, logits: torch.Tensor, seqs: list[ScheduledSequence], batch: SamplingBatch
    ) -> dict[str, BeamCandidates]:
        """Beam rows: log_softmax of the processed logits over the temperature (1 when 0),
        best max(2 x width, logprobs) tokens with finite logprobs."""
        if not batch.beam_rows:
            return {}
        params = [seqs[r].sampling_params for r in batch.beam_rows]
        temperature = [[p.temperature or 1.0] for p in params]
        rows = logits.index_select(0, self._rows(batch.beam_rows)) / self._tensor(temperature)
        k = max(max(2 * p.beam_width, p.num_logprobs(self.vocab_size)) for p in params)
        values, ids = rows.log_softmax(dim=-1).topk(min(k, self.vocab_size), dim=-1)
        out = {}
        rows_out = zip(batch.beam_rows, values.tolist(), ids.tolist(), strict=True)
        for row, value_list, id_list in rows_out:
            finite = [i for i, v in enumerate(value_list) if v != float("-inf")]
            out[seqs[row].request_id] = BeamCandidates(
                [id_list[i] for i in finite], [value_list[i] for i in finite]
            )
        return out

    def _logprobs(self, raw, tokens, seqs, batch: SamplingBatch) -> list[PositionLogprobs | None]:
        out: list[PositionLogprobs | None] = [None] * batch.num_rows
        if raw is None:
            return out
        rows = batch.logprob_rows
        params = [seqs[r].sampling_params for r in rows]
        entries = position_logprobs(
            raw,
            tokens.index_select(0, self._rows(rows)),
            [p.num_logprobs(self.vocab_size) for p in params],
            [p.logprob_token_ids for p in params],
        )
        for row, entry in zip(rows, entries, strict=True):
            out[row] = entry
        return out

    # -- batch tensors -------------------------------------------------------------------
    def _temperature(self, params: Sequence[SamplingParams], greedy: list[bool]) -> torch.Tensor:
        values = [[1.0 if g else p.temperature] for g, p in zip(greedy, params, strict=True)]
        return self._tensor(values)

    def _per_row(self, params, uses: str, value, off, sampling: bool) -> torch.Tensor | None:
        """[N] of the parameter where used (and the row samples), `off` elsewhere; None
        when no row uses it."""
        if not sampling or not any(getattr(p, uses) for p in params):
            return None
        dtype = torch.int64 if isinstance(off, int) else torch.float32
        return self._tensor([value(p) if getattr(p, uses) else off for p in params], dtype)

    def _penalties(self, seqs: list[ScheduledSequence]) -> Penalties | None:
        rows = [r for r, s in enumerate(seqs) if s.sampling_params.uses_penalties]
        if not rows:
            return None
        if self._history is None:
            self._history = TokenHistory(self.device)
        picked = [seqs[r] for r in rows]
        pairs = self._history.sync(
            [s.request_id for s in picked],
            [s.prompt_token_ids for s in picked],
            [s.output_token_ids for s in picked],
        )
        params = [s.sampling_params for s in picked]

        def per_pair(values: list[float]) -> torch.Tensor:
            return self._tensor(values).repeat_interleave(pairs.lengths)

        return Penalties(
            rows=self._rows(rows).index_select(0, pairs.rows),
            tokens=pairs.tokens,
            output_counts=pairs.output_counts,
            repetition=per_pair([p.repetition_penalty for p in params]),
            frequency=per_pair([p.frequency_penalty for p in params]),
            presence=per_pair([p.presence_penalty for p in params]),
        )

    def _bias(self, seqs: list[ScheduledSequence]):
        found = [
            (row, state.bias)
            for row, s in enumerate(seqs)
            if (state := self._states.get(s.request_id)) and state.bias is not None
        ]
        if not found:
            return None
        rows = torch.cat([torch.full_like(ids, row) for row, (ids, _) in found])
        return (
            rows,
            torch.cat([ids for _, (ids, _) in found]),
            torch.cat([v for _, (_, v) in found]),
        )

    def _allowed(self, seqs: list[ScheduledSequence]):
        found = [
            (row, state.allowed)
            for row, s in enumerate(seqs)
            if (state := self._states.get(s.request_id)) and state.allowed is not None
        ]
        if not found:
            return None
        return self._rows([r for r, _ in found]), torch.stack([m for _, m in found])

    def _flatten(self, banned: list[tuple[int, list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [row for row, cols in banned for _ in cols]
        cols = [c for _, cols in banned for c in cols]
        return self._rows(rows), self._rows(cols)

    def _rows(self, values: list[int]) -> torch.Tensor:
        return tensor(values, torch.int64, self.device)

    def _tensor(self, values: list, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return tensor(values, dtype, self.device)
