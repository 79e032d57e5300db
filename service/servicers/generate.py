"""GenerateService: Generate / GenerateStream (completions), Chat / ChatStream, Abort."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from protoserve.common.v1 import chat_pb2, output_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc
from service import prompts
from service.chat_output import ChatOutput
from service.chat_pipeline import ChatChoiceDelta, ChatJob, prepare_chat
from service.errors import InvalidArgument
from service.generation import ChoiceDelta, Finish, GenerationJob
from service.inflight import InflightRequests
from service.interceptors import request_id_of
from service.params import build_params, check_cache_salt
from service.registry import Capability, ModelRegistry, ServedModel
from service.servicers import convert
from service.tool_parsers import ToolCallDelta

COMPLETION_DEFAULT_MAX_TOKENS = 16


@dataclass
class _Choice:
    """A choice accumulated for a unary response."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish: Finish | None = None
    logprobs: list[output_pb2.PositionLogprobs] = field(default_factory=list)

    def add(self, delta: ChoiceDelta) -> None:
        self.text += delta.text
        self.token_ids += delta.token_ids
        self.finish = delta.finish or self.finish
        self.logprobs += delta.logprobs


class GenerateServicer(generate_pb2_grpc.GenerateServiceServicer):
    def __init__(self, registry: ModelRegistry, inflight: InflightRequests):
        self._registry = registry
        self._inflight = inflight

    # ----- completions -------------------------------------------------------------
    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateResponse:
        job = self._completion_job(request, context)
        choices = await self._collect(job, _echo_text(job, request.output.echo))
        return pb.GenerateResponse(
            request_id=job.request_id,
            model=job.model.name,
            prompt=_prompt_info(job),
            choices=[
                pb.CompletionChoice(
                    index=i,
                    text=c.text,
                    token_ids=c.token_ids,
                    finish=convert.finish_info(c.finish),
                    logprobs=c.logprobs,
                )
                for i, c in enumerate(choices)
            ],
            usage=convert.usage(job.usage),
        )

    async def GenerateStream(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        if request.sampling.use_beam_search:
            raise InvalidArgument(
                "use_beam_search is not supported with streaming completions.", "use_beam_search"
            )
        job = self._completion_job(request, context)
        _check_streamable(job)
        await context.send_initial_metadata(())  # accepted (the bridge's HTTP status: 200)

        def delta_message(delta: ChoiceDelta) -> pb.CompletionDelta:
            return pb.CompletionDelta(
                index=delta.index, text=delta.text, token_ids=delta.token_ids,
                logprobs=delta.logprobs,
            )  # fmt: skip

        deltas = _with_echo(job.run(), _echo_text(job, request.output.echo))
        async for message in self._stream(job, deltas, pb.GenerateStreamResponse, delta_message):
            yield message

    def _completion_job(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> GenerationJob:
        model = self._registry.get(request.model)
        model.require(Capability.GENERATE, "Completions")
        model.admit()
        if request.suffix:
            raise InvalidArgument("suffix is not supported by this model.", "suffix")
        if request.WhichOneof("prompt") == "token_ids":
            prompt = prompts.from_token_ids(list(request.token_ids.ids), model.vocab_size)
        else:
            prompt = prompts.encode_text(
                request.text, model.tokenizer, request.prompt_options, default_special=True
            )
        echo_only = _echo_without_generation(request)
        if echo_only:  # as vLLM: one token is generated (prompt logprobs ride on it), dropped
            request = _with_max_tokens(request, 1)
        job = self._job(request, context, model, prompt, COMPLETION_DEFAULT_MAX_TOKENS)
        job.echo_only = echo_only
        return job

    # ----- chat --------------------------------------------------------------------
    async def Chat(
        self, request: pb.ChatRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChatResponse:
        chat = self._chat_job(request, context)
        with self._inflight.track(chat.job):
            choices = await chat.collect()
        return pb.ChatResponse(
            request_id=chat.job.request_id,
            model=chat.job.model.name,
            prompt=_prompt_info(chat.job),
            choices=[
                pb.ChatChoice(
                    index=c.index,
                    message=_chat_message(chat.role, c.output),
                    token_ids=c.token_ids,
                    finish=convert.finish_info(c.finish),
                    logprobs=c.logprobs,
                )
                for c in choices
            ],
            usage=convert.usage(chat.job.usage),
        )

    async def ChatStream(
        self, request: pb.ChatRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ChatStreamResponse]:
        chat = self._chat_job(request, context)
        _check_streamable(chat.job)
        await context.send_initial_metadata(())  # accepted (the bridge's HTTP status: 200)
        started: set[int] = set()

        def delta_message(delta: ChatChoiceDelta) -> pb.ChatDelta:
            output = delta.output
            message = pb.ChatDelta(
                index=delta.index, content=output.content, reasoning=output.reasoning,
                tool_calls=[_tool_call_delta(c) for c in output.tool_calls],
                token_ids=delta.token_ids, logprobs=delta.logprobs,
            )  # fmt: skip
            if delta.index not in started:  # a choice's first delta names the role
                started.add(delta.index)
                message.role = chat.role
            return message

        async for message in self._stream(
            chat.job, chat.deltas(), pb.ChatStreamResponse, delta_message
        ):
            yield message

    def _chat_job(self, request: pb.ChatRequest, context: grpc.aio.ServicerContext) -> ChatJob:
        model = self._registry.get(request.model)
        model.require(Capability.GENERATE, "Chat Completions")
        model.admit()
        return prepare_chat(
            request, model, lambda prompt: self._job(request, context, model, prompt, None)
        )

    # ----- shared ------------------------------------------------------------------
    def _job(
        self,
        request,
        context,
        model: ServedModel,
        prompt: prompts.Prompt,
        default_max_tokens: int | None,
    ) -> GenerationJob:
        prompt = prompts.truncate(prompt, request.prompt_options, model.max_model_len)
        prompts.check_context(len(prompt.token_ids), model.max_model_len)
        max_tokens = prompts.generation_budget(
            request.stopping, default_max_tokens, len(prompt.token_ids), model.max_model_len
        )
        if model.defaults.max_tokens is not None:  # generation config's max_new_tokens caps it
            max_tokens = min(max_tokens, model.defaults.max_tokens)
        params = build_params(request, model, max_tokens=max_tokens)
        request_id = request_id_of(context, request.request_id)
        return GenerationJob(
            request_id,
            model,
            prompt,
            params,
            request.priority,
            check_cache_salt(request.cache_salt),
        )

    async def _stream(self, job: GenerationJob, deltas, response_type, delta_message):
        """The stream shape both RPCs share: prompt, deltas (finish on each choice's last),
        end with usage. `deltas`: the job's deltas, as the RPC sees them."""
        header = {"request_id": job.request_id, "model": job.model.name}
        first = True
        with self._inflight.track(job):
            async for delta in deltas:
                if first:
                    first = False
                    yield response_type(**header, prompt=_prompt_info(job))
                message = delta_message(delta)
                if delta.finish is not None:
                    message.finish.CopyFrom(convert.finish_info(delta.finish))
                if job.params.output.continuous_usage_stats:
                    message.usage.CopyFrom(convert.usage(job.usage))
                yield response_type(**header, delta=message)
        yield response_type(**header, end=pb.StreamEnd(usage=convert.usage(job.usage)))

    async def _collect(self, job: GenerationJob, echo: str | None) -> list[_Choice]:
        choices = [_Choice() for _ in range(job.params.output.n)]
        with self._inflight.track(job):
            async for delta in _with_echo(job.run(), echo):
                choices[delta.index].add(delta)
        return choices

    async def Abort(
        self, request: pb.AbortRequest, context: grpc.aio.ServicerContext
    ) -> pb.AbortResponse:
        return pb.AbortResponse(aborted=await self._inflight.abort(list(request.request_ids)))


def _check_streamable(job: GenerationJob) -> None:
    settings = job.params.output
    if settings.best_of > settings.n and not settings.use_beam_search:
        raise InvalidArgument("best_of must equal n when streaming.", "best_of")


async def _with_echo(deltas: AsyncIterator[ChoiceDelta], echo: str | None):
    """Prepend `echo` to the first delta of every choice."""
    echoed: set[int] = set()
    async for delta in deltas:
        if echo and delta.index not in echoed:
            echoed.add(delta.index)
            delta = dataclasses.replace(delta, text=echo + delta.text)
        yield delta


def _echo_text(job: GenerationJob, echo: bool) -> str | None:
    if not echo:
        return None
    if job.prompt.text is not None:
        return job.prompt.text
    return job.model.tokenizer.decode(job.prompt.token_ids)


def _echo_without_generation(request: pb.GenerateRequest) -> bool:
    """echo with max_tokens 0: the response is the prompt alone (OpenAI, vLLM)."""
    stopping = request.stopping
    return request.output.echo and stopping.HasField("max_tokens") and stopping.max_tokens == 0


def _with_max_tokens(request: pb.GenerateRequest, max_tokens: int) -> pb.GenerateRequest:
    copy = pb.GenerateRequest()
    copy.CopyFrom(request)
    copy.stopping.max_tokens = max_tokens
    return copy


def _chat_message(role: str, output: ChatOutput) -> chat_pb2.ChatMessage:
    message = chat_pb2.ChatMessage(role=role, content=output.content, reasoning=output.reasoning)
    message.tool_calls.extend(
        chat_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in output.tool_calls
    )
    return message


def _tool_call_delta(delta: ToolCallDelta) -> pb.ToolCallDelta:
    return pb.ToolCallDelta(
        index=delta.index, id=delta.id, name=delta.name, arguments=delta.arguments
    )


def _prompt_info(job: GenerationJob):
    settings = job.params.output
    info = convert.prompt_info(
        job.prompt,
        job.usage.cached_tokens,
        with_token_ids=settings.return_prompt_token_ids,
        with_text=settings.return_prompt_text,
    )
    info.prompt_logprobs.extend(job.prompt_logprobs or ())
    return info
