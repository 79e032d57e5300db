"""The generation pipeline shared by Generate and Chat: one engine request per sampled
candidate (n, or best_of of which the n best by cumulative logprob are kept), or one
beam-search request yielding the n best beams; incremental detokenisation, stop
strings, logprobs rendering and usage. Yields typed deltas; the servicers turn them
into protobuf messages."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from engine import FinishReason, RequestOutput, SamplingParams
from engine.outputs import BeamSequence
from protoserve.common.v1 import output_pb2
from service.detokenizer import IncrementalDetokenizer
from service.logprobs import LogprobsRenderer, prompt_logprobs
from service.params import RequestParams
from service.prompts import Prompt
from service.registry import ServedModel
from service.request_meter import CANCELLED, FAILED
from service.stop_strings import StopStringMatcher
from service.streams import merge


class FinishKind(enum.Enum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    TOOL_CALLS = "tool_calls"  # chat: a choice that stopped with tool calls


_ENGINE_FINISH = {
    FinishReason.STOP: FinishKind.STOP,
    FinishReason.LENGTH: FinishKind.LENGTH,
    FinishReason.ABORT: FinishKind.ABORT,
}


@dataclass(frozen=True)
class Finish:
    kind: FinishKind
    stop_string: str | None = None
    stop_token_id: int | None = None


@dataclass(frozen=True)
class ChoiceDelta:
    index: int
    text: str
    token_ids: list[int]
    finish: Finish | None = None
    # One per token of this delta, when the request asked for logprobs.
    logprobs: list[output_pb2.PositionLogprobs] = field(default_factory=list)


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int = 0
    cached_tokens: int = 0
    # Chat with a reasoning parser: completion tokens spent thinking.
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class GenerationJob:
    request_id: str
    model: ServedModel
    prompt: Prompt
    params: RequestParams
    # Lower runs first (engine policy "priority"); the engine refuses it under fcfs.
    priority: int = 0
    # Isolates this request's prefix-cache entries.
    cache_salt: str | None = None
    # echo with max_tokens 0: the engine's one token is dropped, each choice ends LENGTH.
    echo_only: bool = False
    usage: Usage = field(init=False)
    # With prompt_logprobs: set from the first engine output, before the first delta.
    prompt_logprobs: list[output_pb2.PositionLogprobs] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.usage = Usage(prompt_tokens=len(self.prompt.token_ids))

    async def run(self) -> AsyncIterator[ChoiceDelta]:
        """Deltas of every choice, interleaved as they are produced (best_of and beam
        search: each choice at once, when all are done)."""
        settings = self.params.output
        if settings.use_beam_search:
            source = self._beam_choices()
        elif settings.best_of > settings.n:
            source = self._best_of()
        else:
            source = merge([self._choice(i) for i in range(settings.n)])
        if self.echo_only:
            source = _prompt_only(source)
        finishes: dict[int, str] = {}
        clock = self.model.meter.start(self.request_id, self.usage.prompt_tokens)
        unfinished = CANCELLED
        try:
            async for delta in source:
                self.usage.completion_tokens += len(delta.token_ids)
                clock.tokens(delta.index, len(delta.token_ids))
                if delta.finish is not None:
                    finishes[delta.index] = delta.finish.kind.value
                yield delta
        except Exception:
            unfinished = FAILED
            raise
        finally:
            reasons = [finishes.get(i, unfinished) for i in range(settings.n)]
            self.model.meter.finish_generation(clock, reasons, self.usage.cached_tokens)

    async def abort(self) -> None:
        """Abort every engine request; their streams end with finish reason ABORT."""
        for index in range(self._num_engine_requests):
            await self.model.engine.abort(self._engine_id(index))

    @property
    def _num_engine_requests(self) -> int:
        settings = self.params.output
        return 1 if settings.use_beam_search else max(settings.n, settings.best_of)

    def _engine_id(self, index: int) -> str:
        return f"{self.request_id}-{index}"

    def _engine_params(self, index: int) -> SamplingParams:
        params = self.params.sampling
        if params.seed is None or index == 0:
            return params
        return dataclasses.replace(params, seed=params.seed + index)

    def _outputs(self, index: int) -> AsyncIterator[RequestOutput]:
        return self.model.engine.generate(
            self._engine_id(index),
            self.prompt.token_ids,
            self._engine_params(index),
            priority=self.priority,
            cache_salt=self.cache_salt,
        )

    def _note(self, output: RequestOutput) -> None:
        self.usage.cached_tokens = max(self.usage.cached_tokens, output.num_cached_tokens)
        if output.prompt_logprobs is not None and self.prompt_logprobs is None:
            self.prompt_logprobs = prompt_logprobs(
                self.model.tokenizer,
                output.prompt_logprobs,
                self.prompt.token_ids,
                self.params.output.return_tokens_as_token_ids,
            )

    def _text_pipeline(self) -> tuple[IncrementalDetokenizer, StopStringMatcher, LogprobsRenderer]:
        settings = self.params.output
        detokenizer = IncrementalDetokenizer(
            self.model.tokenizer,
            self.prompt.token_ids,
            settings.skip_special_tokens,
            settings.spaces_between_special_tokens,
        )
        stops = StopStringMatcher(settings.stop, settings.include_stop_str_in_output)
        renderer = LogprobsRenderer(self.model.tokenizer, settings.return_tokens_as_token_ids)
        return detokenizer, stops, renderer

    async def _choice(self, index: int) -> AsyncIterator[ChoiceDelta]:
        detokenizer, stops, renderer = self._text_pipeline()
        outputs = self._outputs(index)
        try:
            async for output in outputs:
                self._note(output)
                text = stops.feed(detokenizer.add(self._text_ids(output)))
                logprobs = [renderer.position(e) for e in output.logprobs or ()]
                delta = _next_delta(index, output, text, stops, self.model.eos_token_ids)
                if delta is not None:
                    yield dataclasses.replace(delta, logprobs=logprobs)
                if delta is not None and delta.finish is not None:
                    return
        finally:
            await outputs.aclose()

    def _text_ids(self, output: RequestOutput) -> list[int]:
        """The tokens whose text the output carries: as vLLM, not the EOS / stop token
        that ended it (it would show with skip_special_tokens=False), unless
        include_stop_str_in_output."""
        ids = output.new_token_ids
        stopped = output.finished and output.stop_token_id is not None
        if stopped and ids and ids[-1] == output.stop_token_id:
            if not self.params.output.include_stop_str_in_output:
                return ids[:-1]
        return ids

    async def _best_of(self) -> AsyncIterator[ChoiceDelta]:
        """best_of candidates; the n with the highest cumulative logprob, renumbered."""
        settings = self.params.output
        deltas: dict[int, list[ChoiceDelta]] = {i: [] for i in range(settings.best_of)}
        async for delta in merge([self._choice(i) for i in range(settings.best_of)]):
            deltas[delta.index].append(delta)

        def cumulative(index: int) -> float:
            return sum(p.chosen.logprob for d in deltas[index] for p in d.logprobs)

        best = sorted(deltas, key=cumulative, reverse=True)[: settings.n]
        for new_index, old_index in enumerate(best):
            for delta in deltas[old_index]:
                logprobs = delta.logprobs if settings.logprobs else []
                yield dataclasses.replace(delta, index=new_index, logprobs=logprobs)

    async def _beam_choices(self) -> AsyncIterator[ChoiceDelta]:
        """One engine request; its final output holds the best beams, best first."""
        final = None
        outputs = self._outputs(0)
        try:
            async for output in outputs:
                self._note(output)
                final = output
        finally:
            await outputs.aclose()
        if final is None or final.beams is None:  # aborted
            for index in range(self.params.output.n):
                yield ChoiceDelta(index, "", [], Finish(FinishKind.ABORT))
            return
        for index, beam in enumerate(final.beams[: self.params.output.n]):
            yield self._beam_delta(index, beam)

    def _beam_delta(self, index: int, beam: BeamSequence) -> ChoiceDelta:
        detokenizer, stops, renderer = self._text_pipeline()
        text = stops.feed(detokenizer.add(beam.token_ids))
        logprobs = [renderer.position(e) for e in beam.logprobs or ()]
        if stops.matched is not None:
            return ChoiceDelta(
                index, text, beam.token_ids, Finish(FinishKind.STOP, stops.matched), logprobs
            )
        stop_id = beam.stop_token_id if beam.stop_token_id not in self.model.eos_token_ids else None
        finish = Finish(_ENGINE_FINISH[beam.finish_reason], stop_token_id=stop_id)
        return ChoiceDelta(index, text + stops.flush(), beam.token_ids, finish, logprobs)


async def _prompt_only(deltas: AsyncIterator[ChoiceDelta]) -> AsyncIterator[ChoiceDelta]:
    """Only each choice's end, without its generated token: finish reason LENGTH (the
    budget was 0), or ABORT."""
    async for delta in deltas:
        if delta.finish is not None:
            kind = FinishKind.ABORT if delta.finish.kind is FinishKind.ABORT else FinishKind.LENGTH
            yield ChoiceDelta(delta.index, "", [], Finish(kind))


def _next_delta(
    index: int,
    output: RequestOutput,
    text: str,
    stops: StopStringMatcher,
    eos_token_ids: frozenset[int],
) -> ChoiceDelta | None:
    if stops.matched is not None:
        return ChoiceDelta(
            index, text, output.new_token_ids, Finish(FinishKind.STOP, stop_string=stops.matched)
        )
    if output.finished:
        # Like vLLM, a stop token id is reported, EOS is not.
        stop_id = output.stop_token_id if output.stop_token_id not in eos_token_ids else None
        finish = Finish(_ENGINE_FINISH[output.finish_reason], stop_token_id=stop_id)
        return ChoiceDelta(index, text + stops.flush(), output.new_token_ids, finish)
    if text or output.new_token_ids:
        return ChoiceDelta(index, text, output.new_token_ids)
    return None
