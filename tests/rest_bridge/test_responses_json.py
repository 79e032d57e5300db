"""/v1/responses JSON <-> protobuf: request bodies to CreateResponseRequest (400s naming
the field), Response and events to JSON the openai SDK's own models accept."""

from __future__ import annotations

import json

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from protoserve.common.v1 import chat_pb2, output_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from rest_bridge.errors import APIError
from rest_bridge.responses_json import EVENT_TYPES, event_json, response_json
from rest_bridge.responses_request import ResponsesRequest, grpc_request

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def _request(**body) -> pb.CreateResponseRequest:
    return grpc_request(ResponsesRequest.model_validate({"model": "demo", **body}), "rid")


def test_input_items_tools_and_formats_reach_the_proto() -> None:
    out = _request(
        input=[
            {"role": "user", "content": "Hi"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Q"}]},
            {"role": "assistant", "content": "A"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "r"}],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [{"type": "input_text", "text": "42"}],
            },
        ],
        instructions="Be brief.",
        tools=[{"type": "function", "name": "f", "parameters": SCHEMA, "strict": True}],
        tool_choice={"type": "function", "name": "f"},
        text={"format": {"type": "json_schema", "name": "x", "schema": SCHEMA}},
        structured_outputs={"disable_any_whitespace": True},
        max_output_tokens=9,
        temperature=0.0,
        seed=4,
        stop="\n",
        store=False,
        previous_response_id="resp_0",
        include=["message.output_text.logprobs"],
        top_logprobs=2,
    )
    items = out.items.items
    assert [i.WhichOneof("item") for i in items] == [
        "message",
        "message",
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert items[0].message.content[0].input_text == "Hi"
    assert items[2].message.content[0].output_text == "A"
    assert list(items[3].reasoning.content) == ["r"] and items[3].id == "rs_1"
    assert items[5].function_call_output.output == "42"
    assert out.instructions == "Be brief." and out.request_id == "rid"
    [tool] = out.tools
    assert json.loads(tool.parameters_json) == SCHEMA and tool.strict
    assert out.tool_choice.function_name == "f"
    assert json.loads(out.text_format.json_schema.schema) == SCHEMA
    assert out.structured_output.disable_any_whitespace
    assert out.structured_output.WhichOneof("constraint") is None
    assert out.max_output_tokens == 9 and out.sampling.temperature == 0.0 and out.sampling.seed == 4
    assert list(out.stopping.stop) == ["\n"] and out.store is False
    assert out.previous_response_id == "resp_0" and out.top_logprobs == 2


def test_a_string_input_and_defaults() -> None:
    out = _request(input="Hello")
    assert out.text == "Hello" and not out.HasField("store") and not out.HasField("tool_choice")
    assert out.text_format.text and not out.HasField("max_output_tokens")
    assert _request(input="x", tool_choice="required").tool_choice.mode == (
        chat_pb2.ToolChoice.MODE_REQUIRED
    )


@pytest.mark.parametrize(
    "body, param",
    [
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": {"type": "allowed_tools", "tools": []}}, "tool_choice"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": "{"}}},
            "text.format.schema",
        ),
        ({"text": {"verbosity": "low"}}, "text.verbosity"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input",
        ),
        ({"input": [{"type": "function_call", "call_id": "c"}]}, "input"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"logit_bias": {"x": 1.0}}, "logit_bias"),
    ],
)
def test_bad_bodies_are_400s_naming_the_field(body: dict, param: str) -> None:
    with pytest.raises(APIError) as error:
        _request(**{"input": "x", **body})
    assert error.value.status == 400 and error.value.param == param


def _finished_response() -> pb.Response:
    request = _request(
        input="x",
        tools=[{"type": "function", "name": "f", "parameters": SCHEMA}],
        tool_choice="auto",
        text={"format": {"type": "json_schema", "name": "x", "schema": SCHEMA, "strict": True}},
        metadata={"k": "v"},
        user="u1",
    )
    logprob = output_pb2.PositionLogprobs(
        chosen=output_pb2.TokenLogprob(token="{", logprob=-0.5, token_bytes=b"{"),
        top=[output_pb2.TokenLogprob(token="[", logprob=-1.5, token_bytes=b"[")],
    )
    output = [
        pb.Item(
            id="rs_1", status=pb.ITEM_STATUS_COMPLETED, reasoning=pb.ReasoningItem(content=["r"])
        ),
        pb.Item(
            id="msg_1",
            status=pb.ITEM_STATUS_COMPLETED,
            message=pb.MessageItem(
                role="assistant",
                content=[pb.ContentItemPart(output_text='{"a":1}', logprobs=[logprob])],
            ),
        ),
        pb.Item(
            id="fc_1",
            status=pb.ITEM_STATUS_COMPLETED,
            function_call=pb.FunctionCallItem(call_id="c1", name="f", arguments='{"a":1}'),
        ),
    ]
    usage = output_pb2.Usage(prompt_tokens=5, completion_tokens=3, total_tokens=8, cached_tokens=2)
    return pb.Response(
        id="resp_1",
        created_at=1,
        completed_at=2,
        model="demo",
        status=pb.RESPONSE_STATUS_COMPLETED,
        output=output,
        usage=usage,
        request=request,
    )


def test_the_response_json_is_what_the_sdk_parses() -> None:
    body = response_json(_finished_response())
    parsed = Response.model_validate(body)
    assert parsed.output_text == '{"a":1}' and parsed.status == "completed"
    assert [o.type for o in parsed.output] == ["reasoning", "message", "function_call"]
    assert parsed.usage.input_tokens == 5 and parsed.usage.input_tokens_details.cached_tokens == 2
    assert parsed.usage.output_tokens_details.reasoning_tokens == 0
    assert parsed.tools[0].name == "f" and parsed.tool_choice == "auto"
    assert parsed.text.format.type == "json_schema" and body["text"]["format"]["schema"] == SCHEMA
    assert parsed.metadata == {"k": "v"} and body["user"] == "u1"
    [logprob] = parsed.output[1].content[0].logprobs
    assert (logprob.token, logprob.bytes, logprob.top_logprobs[0].token) == ("{", [123], "[")
    assert body["completed_at"] == 2 and body["error"] is None


def test_an_incomplete_or_failed_response_says_why() -> None:
    response = _finished_response()
    response.status, response.incomplete_reason = pb.RESPONSE_STATUS_INCOMPLETE, "max_output_tokens"
    body = response_json(response)
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["completed_at"] is None
    response.status = pb.RESPONSE_STATUS_FAILED
    response.error.CopyFrom(pb.ResponseError(code="server_error", message="boom"))
    assert response_json(response)["error"] == {"code": "server_error", "message": "boom"}


def test_every_event_kind_is_an_sdk_event() -> None:
    response = _finished_response()
    message, call = response.output[1], response.output[2]
    ref = pb.ItemRef(item_id="msg_1", output_index=1)
    events = {
        "created": response,
        "in_progress": response,
        "output_item_added": pb.ItemEvent(output_index=1, item=message),
        "content_part_added": pb.ContentPartEvent(ref=ref, part=pb.ContentItemPart(output_text="")),
        "output_text_delta": pb.TextDelta(
            ref=ref, delta="{", logprobs=message.message.content[0].logprobs
        ),
        "output_text_done": pb.TextDone(ref=ref, text='{"a":1}'),
        "reasoning_text_delta": pb.TextDelta(ref=ref, delta="r"),
        "reasoning_text_done": pb.TextDone(ref=ref, text="r"),
        "function_call_arguments_delta": pb.TextDelta(ref=ref, delta="{"),
        "function_call_arguments_done": pb.TextDone(ref=ref, text='{"a":1}', name="f"),
        "content_part_done": pb.ContentPartEvent(
            ref=ref, part=pb.ContentItemPart(reasoning_text="r")
        ),
        "output_item_done": pb.ItemEvent(output_index=2, item=call),
        "completed": response,
        "incomplete": response,
        "failed": response,
    }
    assert set(events) == set(EVENT_TYPES)
    adapter = TypeAdapter(ResponseStreamEvent)
    for number, (kind, value) in enumerate(events.items()):
        body = event_json(pb.ResponseEvent(sequence_number=number, **{kind: value}))
        parsed = adapter.validate_python(body)
        assert parsed.type == EVENT_TYPES[kind] and parsed.sequence_number == number
        assert type(parsed).__name__ != "dict"
    done = event_json(
        pb.ResponseEvent(function_call_arguments_done=events["function_call_arguments_done"])
    )
    assert (done["name"], done["arguments"]) == ("f", '{"a":1}')
