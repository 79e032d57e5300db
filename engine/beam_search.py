"""Beam search inside the engine, with beams sharing KV blocks.

A beam-search request is a group of sequences, each a scheduler request ("<id>#beam<k>").
Each step every live beam's row yields its best 2 x width candidate tokens (log_softmax of
the processed logits: the distribution searched). Once every live beam of a group has
reported (a beam that ran while a sibling waited is parked until then), the group steps,
as vLLM does: candidates ending in EOS or a stop token become finished hypotheses; the
`width` best of the others (by cumulative logprob) are the new beams. A beam chosen twice
forks: the scheduler copies the request and the KV manager shares its blocks (the next
write into a shared partial block copies it first); a beam not chosen is dropped. At
max_tokens (or the context length) the live beams finish too, and the request's one
output carries the best hypotheses by cumulative_logprob / length ** length_penalty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.outputs import BeamSequence, PositionLogprobs, RequestOutput, TokenLogprob
from engine.request import FinishReason, Request, RequestStatus
from engine.sampling_params import SamplingParams
from engine.scheduler import Scheduler


@dataclass(frozen=True)
class BeamCandidates:
    """A beam row's best next tokens, most likely first (finite logprobs only)."""

    token_ids: list[int]
    logprobs: list[float]


@dataclass
class _Beam:
    request_id: str  # the scheduler's id of this beam's sequence
    cumulative_logprob: float = 0.0
    logprobs: list[PositionLogprobs] = field(default_factory=list)


@dataclass
class _Group:
    request_id: str
    params: SamplingParams
    num_prompt_tokens: int
    beams: list[_Beam]
    finished: list[BeamSequence] = field(default_factory=list)
    reported: dict[str, BeamCandidates] = field(default_factory=dict)
    num_cached_tokens: int = 0
    next_index: int = 1

    def new_id(self) -> str:
        self.next_index += 1
        return f"{self.request_id}#beam{self.next_index - 1}"


def beam_score(cumulative_logprob: float, length: int, length_penalty: float) -> float:
    return cumulative_logprob / max(length, 1) ** length_penalty


class BeamSearch:
    def __init__(
        self,
        scheduler: Scheduler,
        eos_token_ids: tuple[int, ...],
        max_model_len: int,
        release: Callable[[str, RequestStatus], None],
        adopt: Callable[[str, SamplingParams], None],
    ) -> None:
        self.scheduler = scheduler
        self.eos_token_ids = frozenset(eos_token_ids)
        self.max_model_len = max_model_len
        self._release = release  # finish a beam's sequence and free what it holds
        self._adopt = adopt  # a forked sequence joins the sampler (bias, allowed tokens)
        self._groups: dict[str, _Group] = {}
        self._group_of: dict[str, _Group] = {}  # beam sequence id -> its group

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._groups

    def start(self, request_id: str, params: SamplingParams, num_prompt_tokens: int) -> str:
        """A new group; the id of its first sequence (the prompt), which the caller adds."""
        beam = _Beam(f"{request_id}#beam0")
        group = _Group(request_id, params, num_prompt_tokens, [beam])
        self._groups[request_id] = group
        self._group_of[beam.request_id] = group
        return beam.request_id

    def is_beam(self, sequence_id: str) -> bool:
        return sequence_id in self._group_of

    def update(self, candidates: dict[str, BeamCandidates]) -> list[RequestOutput]:
        """Record this step's candidates; step the groups whose beams have all reported;
        the final outputs of groups that finished."""
        ready: dict[str, _Group] = {}
        for sequence_id, found in candidates.items():
            group = self._group_of[sequence_id]
            group.reported[sequence_id] = found
            if all(b.request_id in group.reported for b in group.beams):
                ready[group.request_id] = group
        return [out for g in ready.values() if (out := self._step(g)) is not None]

    def abort(self, request_id: str) -> RequestOutput | None:
        group = self._groups.get(request_id)
        if group is None:
            return None
        for beam in group.beams:
            self._drop(group, beam, RequestStatus.FINISHED_ABORTED)
        group.beams = []
        return self._close(group, FinishReason.ABORT)

    # -- one step of a group ---------------------------------------------------------------
    def _step(self, group: _Group) -> RequestOutput | None:
        if not group.num_cached_tokens:
            first = self.scheduler.get_request(group.beams[0].request_id)
            group.num_cached_tokens = max(first.num_cached_tokens, 0) if first else 0
        chosen = self._choose(group)
        group.reported = {}
        survivors = self._apply(group, chosen)
        if not survivors or self._at_length(group, survivors[0]):
            for beam in survivors:
                request = self.scheduler.get_request(beam.request_id)
                group.finished.append(self._hypothesis(group, beam, request, FinishReason.LENGTH))
                self._drop(group, beam, RequestStatus.FINISHED_LENGTH)
            group.beams = []
            return self._close(group, None)
        group.beams = survivors
        return None

    def _choose(self, group: _Group) -> list[tuple[_Beam, int, float, PositionLogprobs]]:
        """The next beams: (parent, token, cumulative logprob, logprobs entry), best first;
        terminal candidates become finished hypotheses on the way."""
        params, width = group.params, group.params.beam_width
        live = []
        for beam in group.beams:
            found = group.reported[beam.request_id]
            request = self.scheduler.get_request(beam.request_id)
            pairs = zip(found.token_ids[: 2 * width], found.logprobs, strict=False)
            for rank, (token, logprob) in enumerate(pairs, 1):
                total = beam.cumulative_logprob + logprob
                entry = self._entry(params, found, token, logprob, rank)
                if self._is_terminal(params, token):
                    tokens = [*request.output_token_ids, token]
                    group.finished.append(self._finished(group, tokens, total, beam, entry, token))
                else:
                    live.append((beam, token, total, entry))
        live.sort(key=lambda c: c[2], reverse=True)  # stable: beam order, then rank
        return live[:width]

    def _apply(self, group: _Group, chosen) -> list[_Beam]:
        """Fork beams chosen more than once, append each choice, drop the unchosen."""
        survivors: list[_Beam] = []
        taken: set[str] = set()
        for parent, _, _, _ in chosen:  # forks first: a child copies the parent's tokens
            if parent.request_id in taken:
                child_id = group.new_id()
                self.scheduler.fork_request(parent.request_id, child_id)
                self._adopt(child_id, group.params)
                self._group_of[child_id] = group
                survivors.append(_Beam(child_id, parent.cumulative_logprob, list(parent.logprobs)))
            else:
                taken.add(parent.request_id)
                survivors.append(parent)
        for beam, (_, token, total, entry) in zip(survivors, chosen, strict=True):
            self.scheduler.append_token(self.scheduler.get_request(beam.request_id), token)
            beam.cumulative_logprob = total
            if group.params.logprobs is not None:
                beam.logprobs = [*beam.logprobs, entry]
        for beam in group.beams:
            if beam.request_id not in taken:
                self._drop(group, beam, RequestStatus.FINISHED_ABORTED)
        return survivors

    def _at_length(self, group: _Group, beam: _Beam) -> bool:
        request = self.scheduler.get_request(beam.request_id)
        return (
            request.num_output_tokens >= group.params.max_tokens
            or request.num_tokens >= self.max_model_len
        )

    def _is_terminal(self, params: SamplingParams, token: int) -> bool:
        return token in params.stop_token_ids or (
            not params.ignore_eos and token in self.eos_token_ids
        )

    # -- results ---------------------------------------------------------------------------
    @staticmethod
    def _entry(params, found: BeamCandidates, token: int, logprob: float, rank: int):
        if params.logprobs is None:
            return None
        num_top = len(found.token_ids) if params.logprobs < 0 else params.logprobs
        top = [
            TokenLogprob(t, lp, r)
            for r, (t, lp) in enumerate(
                zip(found.token_ids[:num_top], found.logprobs, strict=False), 1
            )
        ]
        return PositionLogprobs(TokenLogprob(token, logprob, rank), top, [])

    def _finished(self, group, tokens, total, beam, entry, token) -> BeamSequence:
        logprobs = [*beam.logprobs, entry] if group.params.logprobs is not None else None
        return BeamSequence(
            token_ids=tokens,
            cumulative_logprob=total,
            score=beam_score(total, len(tokens) - 1, group.params.length_penalty),
            finish_reason=FinishReason.STOP,
            stop_token_id=token,
            logprobs=logprobs,
        )

    def _hypothesis(self, group, beam: _Beam, request: Request, reason) -> BeamSequence:
        tokens = list(request.output_token_ids)
        return BeamSequence(
            token_ids=tokens,
            cumulative_logprob=beam.cumulative_logprob,
            score=beam_score(beam.cumulative_logprob, len(tokens), group.params.length_penalty),
            finish_reason=reason,
            stop_token_id=None,
            logprobs=list(beam.logprobs) if group.params.logprobs is not None else None,
        )

    def _drop(self, group: _Group, beam: _Beam, status: RequestStatus) -> None:
        self._group_of.pop(beam.request_id, None)
        if self.scheduler.get_request(beam.request_id) is not None:
            self._release(beam.request_id, status)

    def _close(self, group: _Group, reason: FinishReason | None) -> RequestOutput:
        del self._groups[group.request_id]
        for sequence_id in [k for k, g in self._group_of.items() if g is group]:
            del self._group_of[sequence_id]
        best = sorted(group.finished, key=lambda b: b.score, reverse=True)
        best = best[: group.params.beam_width]
        top = best[0] if best else None
        return RequestOutput(
            request_id=group.request_id,
            new_token_ids=[],
            finished=True,
            finish_reason=reason or (top.finish_reason if top else FinishReason.LENGTH),
            stop_token_id=top.stop_token_id if top and reason is None else None,
            num_prompt_tokens=group.num_prompt_tokens,
            num_cached_tokens=group.num_cached_tokens,
            num_output_tokens=len(top.token_ids) if top else 0,
            beams=best if reason is None else None,
        )
