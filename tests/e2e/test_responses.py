"""The Responses API end to end: the official openai SDK against the bridge (unary,
stream, text.format json_schema, previous_response_id chains, retrieval, store=false,
400s / 404s naming the field) and the same through ResponsesService stubs."""

from __future__ import annotations

import json

import grpc
import httpx
import jsonschema
import openai
import pytest
from google.rpc import error_details_pb2, status_pb2
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from protoserve.common.v1 import chat_pb2, params_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from protoserve.responses.v1 import responses_pb2_grpc

pytestmark = pytest.mark.e2e

SCHEMA = {
    "type": "object",
    "properties": {
        "color": {"enum": ["red", "green", "blue"]},
        "size": {"type": "integer", "minimum": 0, "maximum": 99},
    },
    "required": ["color", "size"],
    "additionalProperties": False,
}
# The random-weight demo model loves whitespace; vLLM's structured_outputs options bound it.
NO_WHITESPACE = {"structured_outputs": {"disable_any_whitespace": True}}
GREEDY = {"model": "demo", "temperature": 0, "max_output_tokens": 8}


def tokenize_count(servers, messages: list[dict]) -> int:
    reply = httpx.post(
        f"{servers.http_url}/tokenize", json={"model": "demo", "messages": messages}, timeout=30
    )
    reply.raise_for_status()
    return reply.json()["count"]


def _error(exc: openai.APIStatusError) -> dict:
    return exc.response.json()["error"]


# ----- openai SDK ------------------------------------------------------------------------
def test_unary_response_and_get_by_id(openai_client) -> None:
    reply = openai_client.responses.create(input="Tell me about bread.", **GREEDY)
    assert isinstance(reply, Response) and reply.id.startswith("resp_")
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"
    [message] = reply.output
    assert message.type == "message" and message.role == "assistant"
    assert reply.output_text == message.content[0].text and reply.output_text
    usage = reply.usage
    assert usage.output_tokens == 8 and usage.input_tokens > 0
    assert usage.total_tokens == usage.input_tokens + 8
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert usage.input_tokens_details.cached_tokens >= 0
    assert openai_client.responses.retrieve(reply.id) == reply


def test_stream_parses_every_event_and_matches_unary(openai_client) -> None:
    body = {"input": "Stream me a story.", **GREEDY}
    unary = openai_client.responses.create(**body)
    events = list(openai_client.responses.create(stream=True, **body))
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    # Every event is the SDK's typed model (an unknown type would stay a plain object).
    assert all(type(e).__module__.startswith("openai.types.responses") for e in events)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text == final.output_text == unary.output_text
    assert final.usage.output_tokens == unary.usage.output_tokens
    assert final.usage.input_tokens == unary.usage.input_tokens
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    assert openai_client.responses.retrieve(final.id) == final


def test_stream_event_names_are_the_event_types(servers) -> None:
    body = {"input": "Hi", "stream": True, **GREEDY}
    with httpx.stream("POST", f"{servers.http_url}/v1/responses", json=body, timeout=60) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line]
    assert "data: [DONE]" not in lines
    names = [line.removeprefix("event: ") for line in lines[0::2]]
    payloads = [json.loads(line.removeprefix("data: ")) for line in lines[1::2]]
    assert all(line.startswith("event: ") for line in lines[0::2])
    assert names == [p["type"] for p in payloads] and names[-1] == "response.incomplete"


def test_json_schema_text_format_validates(openai_client) -> None:
    reply = openai_client.responses.create(
        model="demo",
        input="Describe a ball.",
        max_output_tokens=200,
        temperature=1.0,
        text={"format": {"type": "json_schema", "name": "ball", "schema": SCHEMA, "strict": True}},
        extra_body={"seed": 7, **NO_WHITESPACE},
    )
    assert reply.status == "completed", reply.output_text
    jsonschema.validate(json.loads(reply.output_text), SCHEMA)
    assert reply.text.format.type == "json_schema" and reply.text.format.name == "ball"


def test_json_schema_text_format_streams_valid_json(openai_client) -> None:
    events = openai_client.responses.create(
        model="demo",
        input="Give me JSON.",
        max_output_tokens=200,
        temperature=1.0,
        text={"format": {"type": "json_schema", "name": "ball", "schema": SCHEMA}},
        stream=True,
        extra_body={"seed": 5, **NO_WHITESPACE},
    )
    final = list(events)[-1]
    assert final.type == "response.completed", final.response.output_text
    jsonschema.validate(json.loads(final.response.output_text), SCHEMA)


def test_previous_response_id_chains_three_turns(openai_client, servers) -> None:
    first = openai_client.responses.create(input="one", instructions="Be terse.", **GREEDY)
    second = openai_client.responses.create(input="two", previous_response_id=first.id, **GREEDY)
    third = openai_client.responses.create(input="three", previous_response_id=second.id, **GREEDY)
    counts = [r.usage.input_tokens for r in (first, second, third)]
    assert counts[0] < counts[1] < counts[2]
    assert third.previous_response_id == second.id
    # The third prompt is exactly the earlier turns (instructions are not inherited).
    conversation = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": second.output_text},
        {"role": "user", "content": "three"},
    ]
    assert counts[2] == tokenize_count(servers, conversation)
    system = [{"role": "system", "content": "Be terse."}, conversation[0]]
    assert counts[0] == tokenize_count(servers, system)


def test_function_call_items_render_as_tool_messages(openai_client, servers) -> None:
    items = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
    ]
    reply = openai_client.responses.create(input=items, **GREEDY)
    messages = [
        items[0],
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]
    assert reply.usage.input_tokens == tokenize_count(servers, messages)


def test_store_false_is_not_retrievable(openai_client) -> None:
    reply = openai_client.responses.create(input="x", store=False, **GREEDY)
    with pytest.raises(openai.NotFoundError) as error:
        openai_client.responses.retrieve(reply.id)
    assert _error(error.value)["param"] == "response_id"
    with pytest.raises(openai.NotFoundError) as error:
        openai_client.responses.create(input="y", previous_response_id=reply.id, **GREEDY)
    assert _error(error.value)["param"] == "previous_response_id"


def test_unknown_previous_response_id_is_404_naming_it(openai_client) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        openai_client.responses.create(input="x", previous_response_id="resp_nope", **GREEDY)
    body = _error(error.value)
    assert body["param"] == "previous_response_id" and "previous_response_id" in body["message"]
    assert "resp_nope" in body["message"]
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve("resp_unknown")


def test_cancel_of_a_synchronous_response_is_400(openai_client) -> None:
    reply = openai_client.responses.create(input="x", **GREEDY)
    with pytest.raises(openai.BadRequestError) as error:
        openai_client.responses.cancel(reply.id)
    assert _error(error.value)["param"] == "response_id"


WEATHER = {"type": "function", "name": "weather", "parameters": {"type": "object"}}
BAD_SCHEMA = {"type": "object", "properties": {"a": {"type": "nonsense"}}}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "body, param",
    [
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": BAD_SCHEMA}}},
            "text.format.schema",
        ),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"top_logprobs": 30}, "top_logprobs"),
        ({"background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
        ({"tools": [{"type": "web_search"}]}, "tools"),
    ],
)
def test_bad_input_is_400_naming_the_field(servers, body: dict, param: str, stream: bool) -> None:
    request = {"model": "demo", "input": "x", "stream": stream, **body}
    reply = httpx.post(f"{servers.http_url}/v1/responses", json=request, timeout=60)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


def test_sdk_parses_the_unary_json_as_its_own_model(servers) -> None:
    body = {"input": "x", **GREEDY}
    raw = httpx.post(f"{servers.http_url}/v1/responses", json=body, timeout=60).json()
    Response.model_validate(raw)


# ----- gRPC ------------------------------------------------------------------------------
@pytest.fixture
def responses_stub(grpc_channel) -> responses_pb2_grpc.ResponsesServiceStub:
    return responses_pb2_grpc.ResponsesServiceStub(grpc_channel)


def _grpc_request(**fields) -> pb.CreateResponseRequest:
    return pb.CreateResponseRequest(
        model="demo",
        max_output_tokens=8,
        sampling=params_pb2.SamplingParams(temperature=0),
        **fields,
    )


def test_grpc_create_stream_get_and_chain(responses_stub) -> None:
    unary = responses_stub.CreateResponse(_grpc_request(text="Hello"), timeout=60)
    assert unary.status == pb.RESPONSE_STATUS_INCOMPLETE and unary.usage.completion_tokens == 8
    events = list(responses_stub.CreateResponseStream(_grpc_request(text="Hello"), timeout=60))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[:2] == ["created", "in_progress"] and kinds[-1] == "incomplete"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.output_text_delta.delta for e in events if e.HasField("output_text_delta"))
    assert text == unary.output[0].message.content[0].output_text
    final = events[-1].incomplete
    got = responses_stub.GetResponse(pb.GetResponseRequest(response_id=final.id), timeout=10)
    assert got == final
    follow_up = responses_stub.CreateResponse(
        _grpc_request(text="More", previous_response_id=final.id), timeout=60
    )
    assert follow_up.usage.prompt_tokens > final.usage.prompt_tokens


def test_grpc_items_metadata_and_request_id(responses_stub) -> None:
    message = pb.MessageItem(role="user", content=[pb.ContentItemPart(input_text="Hi")])
    reply = responses_stub.CreateResponse(
        _grpc_request(items=pb.ItemList(items=[pb.Item(message=message)])),
        metadata=(("x-request-id", "grpc-responses-1"),),
        timeout=60,
    )
    assert reply.id == "resp_grpc-responses-1" and reply.model == "demo"
    assert reply.request.items.items[0].message.content[0].input_text == "Hi"


@pytest.mark.parametrize(
    "call, code, field",
    [
        (
            lambda stub: stub.CreateResponse(
                _grpc_request(text="x", previous_response_id="resp_gone"), timeout=10
            ),
            grpc.StatusCode.NOT_FOUND,
            "previous_response_id",
        ),
        (
            lambda stub: stub.GetResponse(
                pb.GetResponseRequest(response_id="resp_gone"), timeout=10
            ),
            grpc.StatusCode.NOT_FOUND,
            "response_id",
        ),
        (
            lambda stub: list(
                stub.CreateResponseStream(
                    _grpc_request(
                        text="x",
                        tools=[chat_pb2.Tool(name="f")],
                        tool_choice=chat_pb2.ToolChoice(function_name="g"),
                    ),
                    timeout=10,
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tool_choice",
        ),
    ],
)
def test_grpc_errors_name_the_field(responses_stub, call, code, field) -> None:
    with pytest.raises(grpc.RpcError) as error:
        call(responses_stub)
    assert error.value.code() == code and field in error.value.details()
    assert _violated_field(error.value) == field


def _violated_field(error: grpc.RpcError) -> str | None:
    """The google.rpc.BadRequest field the service attaches."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                violations = error_details_pb2.BadRequest()
                if detail.Unpack(violations) and violations.field_violations:
                    return violations.field_violations[0].field
    return None


def test_stream_events_validate_as_sdk_union(servers) -> None:
    """Each raw event is a member of the SDK's ResponseStreamEvent union."""
    adapter = TypeAdapter(ResponseStreamEvent)
    body = {"input": "Hi", "stream": True, **GREEDY}
    with httpx.stream("POST", f"{servers.http_url}/v1/responses", json=body, timeout=60) as reply:
        data = [line for line in reply.iter_lines() if line.startswith("data: ")]
    for line in data:
        adapter.validate_python(json.loads(line.removeprefix("data: ")))
