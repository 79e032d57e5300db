"""A CreateResponseRequest as the ChatRequest the chat pipeline runs: the conversation,
sampling and stopping (max_output_tokens is the budget), tools and tool_choice,
text.format as a structured-output constraint, reasoning effort for the template.
What the Responses API defines but this server does not do is refused, naming the field;
errors the chat pipeline raises are renamed to the Responses fields."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from engine.errors import InvalidParameter
from protoserve.common.v1 import chat_pb2, params_pb2
from protoserve.generate.v1 import generate_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from service.errors import InvalidArgument, ServiceError

MAX_TOP_LOGPROBS = 20
LOGPROBS_INCLUDE = "message.output_text.logprobs"
SUPPORTED_INCLUDES = frozenset({LOGPROBS_INCLUDE, "reasoning.encrypted_content"})
REASONING_SUMMARIES = ("", "auto")  # "auto": the model may give none, and ours give none
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512

# Chat pipeline field -> Responses field (the rest are named alike).
_CHAT_FIELDS = {
    "max_tokens": "max_output_tokens",
    "messages": "input",
    "prompt": "input",
    "logprobs": "top_logprobs",
}


def chat_request(
    request: pb.CreateResponseRequest,
    messages: list[chat_pb2.ChatMessage],
    request_id: str,
) -> generate_pb2.ChatRequest:
    """`messages`: the whole conversation (instructions, earlier turns, this input)."""
    check_request(request)
    chat = generate_pb2.ChatRequest(
        model=request.model,
        messages=messages,
        sampling=request.sampling,
        penalties=request.penalties,
        stopping=_stopping(request),
        output=_output(request),
        template=chat_pb2.ChatTemplateOptions(reasoning_effort=request.reasoning.effort),
        tools=request.tools,
        priority=request.priority,
        request_id=request_id,
        cache_salt=request.cache_salt,
    )
    tool_choice = _tool_choice(request)
    if tool_choice is not None:
        chat.tool_choice.CopyFrom(tool_choice)
    for name in ("parallel_tool_calls", "include_reasoning"):
        if request.HasField(name):
            setattr(chat, name, getattr(request, name))
    structured = _structured_output(request)
    if structured is not None:
        chat.structured_output.CopyFrom(structured)
    return chat


def check_request(request: pb.CreateResponseRequest) -> None:
    """What the Responses API defines that this server refuses (never silently ignores)."""
    if request.background:
        raise InvalidArgument(
            "background responses are not supported by this server.", "background"
        )
    if request.truncation == pb.TRUNCATION_AUTO:
        raise InvalidArgument(
            "truncation 'auto' is not supported; a too-long input is refused.", "truncation"
        )
    if request.reasoning.summary not in REASONING_SUMMARIES:
        raise InvalidArgument(
            f"reasoning.summary {request.reasoning.summary!r} is not supported: this server "
            "does not summarise reasoning.",
            "reasoning.summary",
        )
    unsupported = sorted(set(request.include) - SUPPORTED_INCLUDES)
    if unsupported:
        raise InvalidArgument(
            f"include {unsupported} is not supported (supported: {sorted(SUPPORTED_INCLUDES)}).",
            "include",
        )
    _check_single_choice(request.sampling)
    _check_metadata(dict(request.metadata))


def _check_single_choice(sampling: params_pb2.SamplingParams) -> None:
    if sampling.HasField("n") and sampling.n != 1:
        raise InvalidArgument("n must be 1: a response has one output.", "n")
    if sampling.HasField("best_of") and sampling.best_of != 1:
        raise InvalidArgument("best_of is not supported by the Responses API.", "best_of")
    if sampling.use_beam_search:
        raise InvalidArgument(
            "use_beam_search is not supported by the Responses API.", "use_beam_search"
        )


def _check_metadata(metadata: dict[str, str]) -> None:
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidArgument(f"metadata holds at most {MAX_METADATA_KEYS} pairs.", "metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise InvalidArgument(
                f"metadata keys are at most {MAX_METADATA_KEY} characters and values at most "
                f"{MAX_METADATA_VALUE}.",
                "metadata",
            )


def _stopping(request: pb.CreateResponseRequest) -> params_pb2.StoppingParams:
    stopping = params_pb2.StoppingParams()
    stopping.CopyFrom(request.stopping)
    stopping.ClearField("max_tokens")  # max_output_tokens is the budget
    if request.HasField("max_output_tokens"):
        if request.max_output_tokens < 1:
            raise InvalidArgument(
                f"max_output_tokens must be at least 1, got {request.max_output_tokens}.",
                "max_output_tokens",
            )
        stopping.max_tokens = request.max_output_tokens
    return stopping


def wants_logprobs(request: pb.CreateResponseRequest) -> bool:
    return LOGPROBS_INCLUDE in request.include or request.top_logprobs > 0


def _output(request: pb.CreateResponseRequest) -> params_pb2.OutputOptions:
    if not 0 <= request.top_logprobs <= MAX_TOP_LOGPROBS:
        raise InvalidArgument(
            f"top_logprobs must be in [0, {MAX_TOP_LOGPROBS}], got {request.top_logprobs}.",
            "top_logprobs",
        )
    output = params_pb2.OutputOptions()
    if wants_logprobs(request):
        output.logprobs = request.top_logprobs
    return output


def _tool_choice(request: pb.CreateResponseRequest) -> chat_pb2.ToolChoice | None:
    """The choice the chat pipeline gets; None leaves its default (auto with tools)."""
    if not request.HasField("tool_choice"):
        return None
    choice = request.tool_choice
    names = [t.name for t in request.tools]
    if choice.WhichOneof("choice") == "function_name":
        if choice.function_name not in names:
            raise InvalidArgument(
                f"tool_choice names the function `{choice.function_name}`, which is not in "
                f"`tools` ({', '.join(names) or 'none given'}).",
                "tool_choice",
            )
        return choice
    if not request.tools:
        if choice.mode == chat_pb2.ToolChoice.MODE_REQUIRED:
            raise InvalidArgument("tool_choice 'required' needs `tools`.", "tool_choice")
        return None  # none / auto without tools: plain text either way
    return choice


def _structured_output(request: pb.CreateResponseRequest) -> params_pb2.StructuredOutput | None:
    """text.format's constraint, or vLLM's structured_outputs; structured_outputs holding
    only options (disable_any_whitespace, whitespace_pattern, …) applies them to text.format."""
    constraint = _text_format_constraint(request.text_format)
    if not request.HasField("structured_output"):
        return constraint
    extra = request.structured_output
    if _has_constraint(extra):
        if constraint is not None:
            raise InvalidArgument(
                "structured_outputs cannot give a constraint together with text.format "
                "(structured_outputs may carry only options then).",
                "structured_outputs",
            )
        return extra
    if constraint is None:
        raise InvalidArgument(
            "structured_outputs without a constraint needs text.format json_schema or json_object.",
            "structured_outputs",
        )
    merged = params_pb2.StructuredOutput()
    merged.CopyFrom(extra)
    merged.MergeFrom(constraint)
    return merged


def _has_constraint(message: params_pb2.StructuredOutput) -> bool:
    kind = message.WhichOneof("constraint")
    return kind is not None and not (kind == "json_object" and not message.json_object)


def _text_format_constraint(fmt: pb.TextFormat) -> params_pb2.StructuredOutput | None:
    kind = fmt.WhichOneof("format")
    if kind == "json_object" and fmt.json_object:
        return params_pb2.StructuredOutput(json_object=True)
    if kind != "json_schema":
        return None
    if not fmt.json_schema.name:
        raise InvalidArgument("text.format.name is required for json_schema.", "text.format")
    if not fmt.json_schema.schema:
        raise InvalidArgument(
            "text.format.schema is required for json_schema.", "text.format.schema"
        )
    return params_pb2.StructuredOutput(json_schema=fmt.json_schema.schema)


@contextlib.contextmanager
def responses_fields(request: pb.CreateResponseRequest) -> Iterator[None]:
    """Errors of the chat pipeline, naming the Responses field instead of the chat one."""
    try:
        yield
    except (ServiceError, InvalidParameter) as exc:
        renamed = _rename(exc.field, request)
        if renamed == exc.field:
            raise
        kind = type(exc) if isinstance(exc, ServiceError) else InvalidArgument
        raise kind(exc.message, renamed) from exc


def _rename(field: str | None, request: pb.CreateResponseRequest) -> str | None:
    if field is None:
        return None
    if field.startswith("structured_outputs") and not _has_constraint(request.structured_output):
        return (
            "text.format.schema" if request.text_format.HasField("json_schema") else "text.format"
        )
    return _CHAT_FIELDS.get(field, field)
