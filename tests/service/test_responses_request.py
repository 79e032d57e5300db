"""CreateResponseRequest -> the ChatRequest the chat pipeline runs; refusals naming the
Responses field; chat-pipeline errors renamed; the response store's LRU."""

from __future__ import annotations

import json

import pytest

from engine.errors import InvalidParameter
from protoserve.common.v1 import chat_pb2, params_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from service.errors import InvalidArgument, NotFound
from service.responses.chat_request import chat_request, responses_fields
from service.responses.store import ResponseStore, StoredResponse

USER = [chat_pb2.ChatMessage(role="user", content="Hi")]
TOOLS = [chat_pb2.Tool(name="weather", parameters_json='{"type": "object"}')]
SCHEMA = json.dumps({"type": "object", "properties": {"a": {"type": "integer"}}})


def _convert(**fields):
    return chat_request(pb.CreateResponseRequest(text="Hi", **fields), USER, "rid")


def test_fields_reach_the_chat_request() -> None:
    chat = _convert(
        model="demo",
        max_output_tokens=7,
        sampling=params_pb2.SamplingParams(temperature=0.5, top_p=0.9, seed=3),
        penalties=params_pb2.PenaltyParams(presence_penalty=0.5),
        stopping=params_pb2.StoppingParams(stop=["\n"], max_tokens=99),
        tools=TOOLS,
        tool_choice=chat_pb2.ToolChoice(mode=chat_pb2.ToolChoice.MODE_REQUIRED),
        parallel_tool_calls=False,
        reasoning=pb.ReasoningOptions(effort="low"),
        include_reasoning=False,
        top_logprobs=3,
        priority=2,
        cache_salt="s",
    )
    assert chat.model == "demo" and chat.request_id == "rid" and list(chat.messages) == USER
    assert chat.stopping.max_tokens == 7 and list(chat.stopping.stop) == ["\n"]
    assert chat.sampling.temperature == 0.5 and chat.sampling.seed == 3
    assert chat.penalties.presence_penalty == 0.5
    assert list(chat.tools) == TOOLS and chat.tool_choice.mode == chat_pb2.ToolChoice.MODE_REQUIRED
    assert chat.parallel_tool_calls is False and chat.include_reasoning is False
    assert chat.template.reasoning_effort == "low" and chat.output.logprobs == 3
    assert (chat.priority, chat.cache_salt) == (2, "s")


def test_defaults_leave_the_chat_pipeline_its_own() -> None:
    chat = _convert()
    for name in ("tool_choice", "parallel_tool_calls", "include_reasoning", "structured_output"):
        assert not chat.HasField(name), name
    assert not chat.stopping.HasField("max_tokens") and not chat.output.HasField("logprobs")
    with_include = _convert(include=["message.output_text.logprobs"])
    assert with_include.output.HasField("logprobs") and with_include.output.logprobs == 0


def test_text_format_becomes_the_structured_output() -> None:
    fmt = pb.TextFormat(json_schema=pb.JsonSchemaFormat(name="x", schema=SCHEMA))
    assert _convert(text_format=fmt).structured_output.json_schema == SCHEMA
    json_object = _convert(text_format=pb.TextFormat(json_object=True)).structured_output
    assert json_object.json_object
    assert not _convert(text_format=pb.TextFormat(text=True)).HasField("structured_output")
    options = params_pb2.StructuredOutput(disable_any_whitespace=True)
    merged = _convert(text_format=fmt, structured_output=options).structured_output
    assert merged.json_schema == SCHEMA and merged.disable_any_whitespace
    regex = params_pb2.StructuredOutput(regex="[a-z]+")
    assert _convert(structured_output=regex).structured_output == regex


def test_auto_or_none_without_tools_is_plain_text() -> None:
    for mode in (chat_pb2.ToolChoice.MODE_AUTO, chat_pb2.ToolChoice.MODE_NONE):
        assert not _convert(tool_choice=chat_pb2.ToolChoice(mode=mode)).HasField("tool_choice")


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"tools": TOOLS, "tool_choice": chat_pb2.ToolChoice(function_name="nope")}, "tool_choice"),
        ({"tool_choice": chat_pb2.ToolChoice(function_name="weather")}, "tool_choice"),
        (
            {"tool_choice": chat_pb2.ToolChoice(mode=chat_pb2.ToolChoice.MODE_REQUIRED)},
            "tool_choice",
        ),
        (
            {"text_format": pb.TextFormat(json_schema=pb.JsonSchemaFormat(schema=SCHEMA))},
            "text.format",
        ),
        (
            {"text_format": pb.TextFormat(json_schema=pb.JsonSchemaFormat(name="x"))},
            "text.format.schema",
        ),
        (
            {
                "text_format": pb.TextFormat(json_object=True),
                "structured_output": params_pb2.StructuredOutput(regex="a"),
            },
            "structured_outputs",
        ),
        ({"structured_output": params_pb2.StructuredOutput()}, "structured_outputs"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"background": True}, "background"),
        ({"truncation": pb.TRUNCATION_AUTO}, "truncation"),
        ({"reasoning": pb.ReasoningOptions(summary="detailed")}, "reasoning.summary"),
        ({"include": ["file_search_call.results"]}, "include"),
        ({"sampling": params_pb2.SamplingParams(n=2)}, "n"),
        ({"sampling": params_pb2.SamplingParams(use_beam_search=True)}, "use_beam_search"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ],
)
def test_bad_requests_name_the_field(fields: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        _convert(**fields)
    assert error.value.field == field


@pytest.mark.parametrize(
    "raised, fields, field",
    [
        (InvalidArgument("max_tokens must be at least 1", "max_tokens"), {}, "max_output_tokens"),
        (InvalidArgument("empty", "messages"), {}, "input"),
        (
            InvalidParameter("structured_outputs.json", "Invalid json constraint"),
            {"text_format": pb.TextFormat(json_schema=pb.JsonSchemaFormat(name="x", schema="{}"))},
            "text.format.schema",
        ),
        (
            InvalidParameter("structured_outputs.regex", "bad regex"),
            {"structured_output": params_pb2.StructuredOutput(regex="(")},
            "structured_outputs.regex",
        ),
        (InvalidArgument("too hot", "temperature"), {}, "temperature"),
    ],
)
def test_chat_pipeline_errors_name_the_responses_field(raised, fields, field) -> None:
    request = pb.CreateResponseRequest(text="x", **fields)
    with pytest.raises((InvalidArgument, InvalidParameter)) as error:
        with responses_fields(request):
            raise raised
    assert error.value.field == field and error.value.message == raised.message


def test_other_errors_keep_their_kind() -> None:
    with pytest.raises(NotFound) as error:
        with responses_fields(pb.CreateResponseRequest()):
            raise NotFound("The model `x` does not exist.", "model")
    assert error.value.field == "model"


def _stored(response_id: str) -> StoredResponse:
    return StoredResponse(pb.Response(id=response_id), (chat_pb2.ChatMessage(role="user"),))


def test_the_store_evicts_the_least_recently_used() -> None:
    store = ResponseStore(capacity=2)
    store.put(_stored("a"))
    store.put(_stored("b"))
    assert store.get("a") is not None  # "a" is now the most recent
    store.put(_stored("c"))
    assert store.get("b") is None and store.get("a") is not None and store.get("c") is not None
    assert len(store) == 2
    nothing = ResponseStore(capacity=0)
    nothing.put(_stored("a"))
    assert nothing.get("a") is None
    with pytest.raises(ValueError):
        ResponseStore(capacity=-1)
