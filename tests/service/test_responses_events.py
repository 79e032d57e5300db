"""ChatStream messages -> the Responses event sequence: order, sequence numbers, item
ids and indexes, and a final response equal to what the unary path builds."""

from __future__ import annotations

from protoserve.common.v1 import chat_pb2, output_pb2
from protoserve.generate.v1 import generate_pb2 as gen
from protoserve.responses.v1 import responses_pb2 as pb
from service.responses import output
from service.responses.events import ResponseEvents

STOP = output_pb2.FinishInfo(reason=output_pb2.FINISH_REASON_STOP)
USAGE = output_pb2.Usage(prompt_tokens=5, completion_tokens=4, total_tokens=9)


def _delta(**fields) -> gen.ChatStreamResponse:
    return gen.ChatStreamResponse(delta=gen.ChatDelta(**fields))


def _run(messages: list[gen.ChatStreamResponse]) -> tuple[list[pb.ResponseEvent], pb.Response]:
    start = output.in_progress(pb.CreateResponseRequest(text="x"), "resp_1", "demo")
    events = ResponseEvents(start)
    produced = events.started()
    for message in [gen.ChatStreamResponse(prompt=output_pb2.PromptInfo()), *messages]:
        produced += events.feed(message)
    closing, response = events.complete()
    return produced + closing, response


def _kinds(events: list[pb.ResponseEvent]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


def test_text_stream_follows_openai_event_order() -> None:
    events, response = _run(
        [
            _delta(role="assistant", content="Hel"),
            _delta(content="lo", finish=STOP),
            gen.ChatStreamResponse(end=gen.StreamEnd(usage=USAGE)),
        ]
    )
    assert _kinds(events) == [
        "created",
        "in_progress",
        "output_item_added",
        "content_part_added",
        "output_text_delta",
        "output_text_delta",
        "output_text_done",
        "content_part_done",
        "output_item_done",
        "completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[6].output_text_done.text == "Hello"
    assert events[2].output_item_added.item.status == pb.ITEM_STATUS_IN_PROGRESS
    assert not events[2].output_item_added.item.message.content
    [item] = response.output
    assert item == events[8].output_item_done.item and item.status == pb.ITEM_STATUS_COMPLETED
    assert item.message.content[0].output_text == "Hello"
    assert response.status == pb.RESPONSE_STATUS_COMPLETED and response.usage == USAGE
    assert events[-1].completed == response


def test_reasoning_then_text_then_calls_are_separate_items() -> None:
    call = gen.ToolCallDelta(index=0, id="call-a", name="f", arguments='{"a":')
    events, response = _run(
        [
            _delta(role="assistant", reasoning="think"),
            _delta(reasoning="ing", content="Answer"),
            _delta(tool_calls=[call]),
            _delta(tool_calls=[gen.ToolCallDelta(index=0, arguments="1}")]),
            _delta(tool_calls=[gen.ToolCallDelta(index=1, id="call-b", name="g", arguments="{}")]),
            _delta(finish=output_pb2.FinishInfo(reason=output_pb2.FINISH_REASON_TOOL_CALLS)),
        ]
    )
    kinds = _kinds(events)
    assert kinds[2:6] == [
        "output_item_added",
        "content_part_added",
        "reasoning_text_delta",
        "reasoning_text_delta",
    ]
    assert kinds.count("output_item_added") == kinds.count("output_item_done") == 4
    assert kinds.count("function_call_arguments_done") == 2 and kinds[-1] == "completed"
    assert [i.WhichOneof("item") for i in response.output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert list(response.output[0].reasoning.content) == ["thinking"]
    first, second = response.output[2].function_call, response.output[3].function_call
    assert (first.call_id, first.name, first.arguments) == ("call-a", "f", '{"a":1}')
    assert (second.call_id, second.arguments) == ("call-b", "{}")
    done = [
        e.function_call_arguments_done for e in events if e.HasField("function_call_arguments_done")
    ]
    assert [(d.name, d.text, d.ref.output_index) for d in done] == [
        ("f", '{"a":1}', 2),
        ("g", "{}", 3),
    ]
    added = [e.output_item_added for e in events if e.HasField("output_item_added")]
    assert [a.output_index for a in added] == [0, 1, 2, 3]
    assert [a.item.id for a in added] == [i.id for i in response.output]


def test_stream_and_unary_build_the_same_items() -> None:
    message = chat_pb2.ChatMessage(role="assistant", content="Hi there", reasoning="r")
    message.tool_calls.add(id="c1", name="f", arguments="{}")
    unary = output.output_items(message, [], STOP)
    _, streamed = _run(
        [
            _delta(role="assistant", reasoning="r"),
            _delta(content="Hi "),
            _delta(content="there"),
            _delta(tool_calls=[gen.ToolCallDelta(index=0, id="c1", name="f", arguments="{}")]),
            _delta(finish=STOP),
        ]
    )
    for a, b in zip(unary, streamed.output, strict=True):
        a.ClearField("id")
        b.ClearField("id")
    assert list(streamed.output) == unary


def test_a_cut_stream_is_incomplete_and_logprobs_reach_the_text() -> None:
    logprob = output_pb2.PositionLogprobs(chosen=output_pb2.TokenLogprob(token="a", logprob=-1.0))
    events, response = _run(
        [
            _delta(role="assistant", logprobs=[logprob]),  # a token with no text yet
            _delta(content="ab", logprobs=[logprob]),
            _delta(finish=output_pb2.FinishInfo(reason=output_pb2.FINISH_REASON_LENGTH)),
        ]
    )
    assert _kinds(events)[-1] == "incomplete"
    assert response.status == pb.RESPONSE_STATUS_INCOMPLETE
    assert response.incomplete_reason == "max_output_tokens"
    [item] = response.output
    assert item.status == pb.ITEM_STATUS_INCOMPLETE
    assert len(item.message.content[0].logprobs) == 2


def test_no_output_still_makes_an_empty_message() -> None:
    events, response = _run([_delta(role="assistant", finish=STOP)])
    assert _kinds(events)[2:] == [
        "output_item_added",
        "content_part_added",
        "output_text_done",
        "content_part_done",
        "output_item_done",
        "completed",
    ]
    assert response.output[0].message.content[0].output_text == ""
