"""Responses items <-> chat messages, and the chat result as output items."""

from __future__ import annotations

import pytest

from protoserve.common.v1 import chat_pb2, output_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from service.errors import InvalidArgument
from service.responses import conversation, output

STOP = output_pb2.FinishInfo(reason=output_pb2.FINISH_REASON_STOP)
LENGTH = output_pb2.FinishInfo(reason=output_pb2.FINISH_REASON_LENGTH)


def _message(role: str, *texts: str, kind: str = "input_text") -> pb.Item:
    parts = [pb.ContentItemPart(**{kind: t}) for t in texts]
    return pb.Item(message=pb.MessageItem(role=role, content=parts))


def test_a_string_input_is_one_user_message() -> None:
    [message] = conversation.input_messages(pb.CreateResponseRequest(text="Hi"))
    assert (message.role, message.content) == ("user", "Hi")


def test_items_become_messages_tool_calls_and_tool_results() -> None:
    items = [
        _message("developer", "Be brief."),
        _message("user", "Weather in Paris?", "And Rome?"),
        pb.Item(reasoning=pb.ReasoningItem(content=["Two cities: two calls."])),
        pb.Item(function_call=pb.FunctionCallItem(call_id="c1", name="weather", arguments="{}")),
        pb.Item(function_call=pb.FunctionCallItem(call_id="c2", name="weather", arguments="{}")),
        pb.Item(function_call_output=pb.FunctionCallOutputItem(call_id="c1", output="sunny")),
        pb.Item(function_call_output=pb.FunctionCallOutputItem(call_id="c2", output="rain")),
        _message("assistant", "Sunny, then rain.", kind="output_text"),
    ]
    request = pb.CreateResponseRequest(items=pb.ItemList(items=items))
    messages = conversation.input_messages(request)
    assert [m.role for m in messages] == [
        "developer",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert messages[0].content == "Be brief."
    assert [p.text for p in messages[1].parts] == ["Weather in Paris?", "And Rome?"]
    calls = messages[2]
    assert not calls.HasField("content") and calls.reasoning == "Two cities: two calls."
    assert [(c.id, c.name) for c in calls.tool_calls] == [("c1", "weather"), ("c2", "weather")]
    assert [(m.tool_call_id, m.content) for m in messages[3:5]] == [("c1", "sunny"), ("c2", "rain")]
    assert messages[5].content == "Sunny, then rain." and not messages[5].HasField("reasoning")


def test_an_assistant_message_then_its_calls_is_one_message() -> None:
    items = [
        _message("assistant", "Let me look.", kind="output_text"),
        pb.Item(function_call=pb.FunctionCallItem(call_id="c1", name="f", arguments='{"a":1}')),
    ]
    [message] = conversation.items_to_messages(items)
    assert message.content == "Let me look." and message.tool_calls[0].arguments == '{"a":1}'


@pytest.mark.parametrize(
    "item, needle",
    [
        (_message("tool", "x"), "role must be one of"),
        (pb.Item(function_call=pb.FunctionCallItem(name="f")), "needs call_id and name"),
        (pb.Item(function_call_output=pb.FunctionCallOutputItem(output="x")), "call_id"),
        (pb.Item(), "has no item"),
        (_message("user", "x", kind="reasoning_text"), "cannot be input"),
    ],
)
def test_bad_items_name_the_input(item: pb.Item, needle: str) -> None:
    request = pb.CreateResponseRequest(items=pb.ItemList(items=[item]))
    with pytest.raises(InvalidArgument) as error:
        conversation.input_messages(request)
    assert error.value.field == "input" and needle in error.value.message


def test_empty_input_is_refused() -> None:
    for request in (pb.CreateResponseRequest(), pb.CreateResponseRequest(items=pb.ItemList())):
        with pytest.raises(InvalidArgument, match="input must be"):
            conversation.input_messages(request)


def test_the_chat_result_becomes_reasoning_message_and_calls_in_order() -> None:
    message = chat_pb2.ChatMessage(role="assistant", content="Calling.", reasoning="hmm")
    message.tool_calls.add(id="chatcmpl-tool-1", name="f", arguments='{"x":2}')
    items = output.output_items(message, [], STOP)
    assert [i.WhichOneof("item") for i in items] == ["reasoning", "message", "function_call"]
    assert [i.id.split("_")[0] for i in items] == ["rs", "msg", "fc"]
    assert items[1].message.content[0].output_text == "Calling."
    call = items[2].function_call
    assert (call.call_id, call.name, call.arguments) == ("chatcmpl-tool-1", "f", '{"x":2}')
    assert {i.status for i in items} == {pb.ITEM_STATUS_COMPLETED}
    # Stored back as the conversation, it is the same assistant message.
    assert conversation.items_to_messages(items, "output") == [message]


def test_only_tool_calls_make_no_message_item_and_a_cut_output_is_incomplete() -> None:
    message = chat_pb2.ChatMessage(role="assistant")
    message.tool_calls.add(id="c", name="f", arguments="{")
    [item] = output.output_items(message, [], LENGTH)
    assert item.WhichOneof("item") == "function_call" and item.status == pb.ITEM_STATUS_INCOMPLETE
    [empty] = output.output_items(chat_pb2.ChatMessage(role="assistant", content=""), [], STOP)
    assert empty.message.content[0].output_text == ""


@pytest.mark.parametrize(
    "reason, status",
    [
        (output_pb2.FINISH_REASON_STOP, pb.RESPONSE_STATUS_COMPLETED),
        (output_pb2.FINISH_REASON_TOOL_CALLS, pb.RESPONSE_STATUS_COMPLETED),
        (output_pb2.FINISH_REASON_LENGTH, pb.RESPONSE_STATUS_INCOMPLETE),
        (output_pb2.FINISH_REASON_ABORT, pb.RESPONSE_STATUS_CANCELLED),
    ],
)
def test_the_finish_reason_sets_the_status(reason: int, status: int) -> None:
    start = output.in_progress(pb.CreateResponseRequest(text="x"), "resp_1", "demo")
    usage = output_pb2.Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    done = output.finished(start, [], output_pb2.FinishInfo(reason=reason), usage)
    assert done.status == status and done.usage == usage and done.completed_at >= start.created_at
    assert done.incomplete_reason == (
        "max_output_tokens" if status == pb.RESPONSE_STATUS_INCOMPLETE else ""
    )
    assert start.status == pb.RESPONSE_STATUS_IN_PROGRESS and not start.output


def test_response_ids_carry_the_request_id() -> None:
    assert output.response_id("abc") == "resp_abc"
    assert output.response_id("resp_abc") == "resp_abc"
