"""Chat on the generation pipeline: a ChatRequest becomes a prompt (template, tools), a
GenerationJob (constrained when a forced tool choice needs it) and, per choice, an
output parser turning the generated text into reasoning, content and tool calls. Chat
and ChatStream run it; so can any API that speaks through chat (Responses).

    chat = prepare_chat(request, model, make_job)
    async for delta in chat.deltas(): ...      # ChatChoiceDelta per engine output
    choices = await chat.collect()             # or every choice, whole
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from engine.errors import InvalidParameter
from protoserve.common.v1 import output_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from service import prompts
from service.chat import generation_prompt_of, render_prompt
from service.chat_output import ChatOutput, ChatOutputParser, OutputDelta
from service.errors import InvalidArgument
from service.generation import ChoiceDelta, Finish, FinishKind, GenerationJob
from service.reasoning import ReasoningParser, reasoning_parser_class
from service.registry import ServedModel
from service.tool_choice import ToolPlan, plan_tools


@dataclass(frozen=True)
class ChatChoiceDelta:
    index: int
    output: OutputDelta
    token_ids: list[int]
    logprobs: list[output_pb2.PositionLogprobs] = field(default_factory=list)
    # Set on the choice's last delta (TOOL_CALLS when it ends with calls).
    finish: Finish | None = None


@dataclass
class ChatChoice:
    index: int
    output: ChatOutput | None = None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[output_pb2.PositionLogprobs] = field(default_factory=list)
    finish: Finish | None = None


@dataclass
class ChatJob:
    job: GenerationJob
    role: str
    plan: ToolPlan
    prompt_text: str
    reasoning_parser: type[ReasoningParser] | None = None
    include_reasoning: bool = True
    echo: str | None = None
    _parsers: dict[int, ChatOutputParser] = field(default_factory=dict)

    async def deltas(self) -> AsyncIterator[ChatChoiceDelta]:
        """Every choice's deltas as they are generated, parsed."""
        try:
            async for delta in self.job.run():
                yield self._parse(delta)
        except InvalidParameter as exc:
            if self.plan.forced and exc.field.startswith("structured_outputs"):
                raise InvalidArgument(f"tools: {exc}", "tools") from exc
            raise

    async def collect(self) -> list[ChatChoice]:
        choices = [ChatChoice(i) for i in range(self.job.params.output.n)]
        async for delta in self.deltas():
            choice = choices[delta.index]
            choice.token_ids += delta.token_ids
            choice.logprobs += delta.logprobs
            choice.finish = delta.finish or choice.finish
        for choice in choices:
            choice.output = self._result(choice.index)
        return choices

    def parser(self, index: int) -> ChatOutputParser:
        parser = self._parsers.get(index)
        if parser is None:
            parser = self._parsers[index] = ChatOutputParser.create(
                self.plan, self.reasoning_parser, self.prompt_text, prefix=self.echo or ""
            )
        return parser

    def _parse(self, delta: ChoiceDelta) -> ChatChoiceDelta:
        parser = self.parser(delta.index)
        thought = parser.reasoning_tokens
        output = parser.feed(delta.text, len(delta.token_ids))
        finish = None
        if delta.finish is not None:
            last = parser.finish()
            output = OutputDelta(
                output.reasoning + last.reasoning,
                output.content + last.content,
                output.tool_calls + last.tool_calls,
            )
            finish = self._finish(delta.finish, parser.result())
        self.job.usage.reasoning_tokens += parser.reasoning_tokens - thought
        if not self.include_reasoning:
            output = dataclasses.replace(output, reasoning="")
        return ChatChoiceDelta(delta.index, output, delta.token_ids, delta.logprobs, finish)

    def _finish(self, finish: Finish, output: ChatOutput) -> Finish:
        if (
            finish.kind is FinishKind.STOP
            and output.tool_calls
            and self.plan.finish_as_tool_calls()
        ):
            return dataclasses.replace(finish, kind=FinishKind.TOOL_CALLS)
        return finish

    def _result(self, index: int) -> ChatOutput:
        result = self.parser(index).result()
        if self.plan.forced and result.content is None:
            result = dataclasses.replace(result, content="")  # as vLLM: "" beside forced calls
        if not self.include_reasoning:
            result = dataclasses.replace(result, reasoning=None)
        return result


def prepare_chat(
    request: pb.ChatRequest,
    model: ServedModel,
    make_job: Callable[[prompts.Prompt], GenerationJob],
) -> ChatJob:
    """Check the request, render and encode its prompt; `make_job` resolves the
    parameters into a GenerationJob (the servicer's, shared with completions)."""
    options = model.chat_options
    plan = plan_tools(
        list(request.tools),
        request.tool_choice if request.HasField("tool_choice") else None,
        request.parallel_tool_calls if request.HasField("parallel_tool_calls") else True,
        options,
        has_structured_output=request.HasField("structured_output"),
    )
    text = render_prompt(list(request.messages), request.template, list(plan.rendered), model.chat)
    prompt = prompts.encode_text(
        text, model.tokenizer, request.prompt_options, default_special=False
    )
    job = _constrained(make_job(prompt), plan)
    role = (
        options.response_role
        if generation_prompt_of(request.template)
        else (request.messages[-1].role)
    )
    return ChatJob(
        job,
        role,
        plan,
        text,
        reasoning_parser_class(options.reasoning_parser) if options.reasoning_parser else None,
        request.include_reasoning if request.HasField("include_reasoning") else True,
        _echo(request, role),
    )


def _constrained(job: GenerationJob, plan: ToolPlan) -> GenerationJob:
    """A forced choice's grammar; the special tokens its parser reads kept in the text."""
    sampling, output = job.params.sampling, job.params.output
    if plan.constraint is not None:
        sampling = dataclasses.replace(sampling, structured_output=plan.constraint)
    if plan.keeps_special_tokens:
        output = dataclasses.replace(output, skip_special_tokens=False)
    job.params = dataclasses.replace(job.params, sampling=sampling, output=output)
    return job


def _echo(request: pb.ChatRequest, role: str) -> str | None:
    """With echo, the last message's content when it has the reply's role."""
    if not request.output.echo or not request.messages:
        return None
    last = request.messages[-1]
    if last.role != role:
        return None
    return last.content or "".join(p.text for p in last.parts if p.WhichOneof("part") == "text")
