"""The generation pipeline shared by Generate and Chat: one engine request per choice,
incremental detokenisation, stop strings, and usage. Yields typed deltas; the servicers
turn them into protobuf messages."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog

from engine import FinishReason, RequestOutput, SamplingParams
from service.detokenizer import IncrementalDetokenizer
from service.params import RequestParams
from service.prompts import Prompt
from service.registry import ServedModel
from service.stop_strings import StopStringMatcher
from service.streams import merge

log = structlog.get_logger(__name__)


class FinishKind(enum.Enum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


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


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int = 0
    cached_tokens: int = 0

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
    usage: Usage = field(init=False)

    def __post_init__(self) -> None:
        self.usage = Usage(prompt_tokens=len(self.prompt.token_ids))

    async def run(self) -> AsyncIterator[ChoiceDelta]:
        """Deltas of every choice, interleaved as they are produced."""
        choices = [self._choice(i) for i in range(self.params.output.n)]
        finishes: dict[int, str] = {}
        try:
            async for delta in merge(choices):
                self.usage.completion_tokens += len(delta.token_ids)
                if delta.finish is not None:
                    finishes[delta.index] = delta.finish.kind.value
                yield delta
        finally:
            log.info(
                "request finished",
                request_id=self.request_id,
                model=self.model.name,
                prompt_tokens=self.usage.prompt_tokens,
                completion_tokens=self.usage.completion_tokens,
                cached_tokens=self.usage.cached_tokens,
                finish_reasons=[finishes.get(i, "cancelled") for i in range(self.params.output.n)],
            )

    async def abort(self) -> None:
        """Abort every choice; their streams end with finish reason ABORT."""
        for index in range(self.params.output.n):
            await self.model.engine.abort(self._engine_id(index))

    def _engine_id(self, index: int) -> str:
        return f"{self.request_id}-{index}"

    def _engine_params(self, index: int) -> SamplingParams:
        params = self.params.sampling
        if params.seed is None or index == 0:
            return params
        return dataclasses.replace(params, seed=params.seed + index)

    async def _choice(self, index: int) -> AsyncIterator[ChoiceDelta]:
        settings = self.params.output
        detokenizer = IncrementalDetokenizer(
            self.model.tokenizer, self.prompt.token_ids, settings.skip_special_tokens
        )
        stops = StopStringMatcher(settings.stop, settings.include_stop_str_in_output)
        outputs = self.model.engine.generate(
            self._engine_id(index),
            self.prompt.token_ids,
            self._engine_params(index),
            priority=self.priority,
            cache_salt=self.cache_salt,
        )
        try:
            async for output in outputs:
                self.usage.cached_tokens = max(self.usage.cached_tokens, output.num_cached_tokens)
                text = stops.feed(detokenizer.add(output.new_token_ids))
                delta = _next_delta(index, output, text, stops, self.model.eos_token_ids)
                if delta is not None:
                    yield delta
                if delta is not None and delta.finish is not None:
                    return
        finally:
            await outputs.aclose()


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
