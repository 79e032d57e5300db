"""The chat result as a response: output items (reasoning, message, function calls, in
that order), status from the finish reason, usage, ids."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from protoserve.common.v1 import chat_pb2, output_pb2
from protoserve.responses.v1 import responses_pb2 as pb

COMPLETED = pb.ITEM_STATUS_COMPLETED
ITEM_ID_PREFIX = {"message": "msg", "reasoning": "rs", "function_call": "fc"}

_COMPLETED = frozenset(
    {
        output_pb2.FINISH_REASON_STOP,
        output_pb2.FINISH_REASON_TOOL_CALLS,
        output_pb2.FINISH_REASON_REPETITION,
    }
)


def response_id(request_id: str) -> str:
    """The request id is the response id, as vLLM does ("resp_" added when missing)."""
    return request_id if request_id.startswith("resp_") else f"resp_{request_id}"


def item_id(kind: str) -> str:
    return f"{ITEM_ID_PREFIX[kind]}_{uuid.uuid4().hex}"


def call_id() -> str:
    """For a tool call the chat pipeline gave no id."""
    return f"call_{uuid.uuid4().hex}"


def in_progress(request: pb.CreateResponseRequest, response_id_: str, model: str) -> pb.Response:
    """The response as it starts: no output yet."""
    return pb.Response(
        id=response_id_,
        created_at=int(time.time()),
        model=model,
        status=pb.RESPONSE_STATUS_IN_PROGRESS,
        request=request,
    )


def finished(
    start: pb.Response,
    output: Sequence[pb.Item],
    finish: output_pb2.FinishInfo | None,
    usage: output_pb2.Usage,
) -> pb.Response:
    response = pb.Response()
    response.CopyFrom(start)
    response.output.extend(output)
    response.usage.CopyFrom(usage)
    response.completed_at = int(time.time())
    reason = finish.reason if finish is not None else output_pb2.FINISH_REASON_ABORT
    if reason in _COMPLETED:
        response.status = pb.RESPONSE_STATUS_COMPLETED
    elif reason == output_pb2.FINISH_REASON_LENGTH:
        response.status = pb.RESPONSE_STATUS_INCOMPLETE
        response.incomplete_reason = "max_output_tokens"
    else:
        response.status = pb.RESPONSE_STATUS_CANCELLED
    return response


def failed(start: pb.Response, message: str) -> pb.Response:
    response = pb.Response()
    response.CopyFrom(start)
    response.status = pb.RESPONSE_STATUS_FAILED
    response.error.CopyFrom(pb.ResponseError(code="server_error", message=message))
    return response


def item_status(finish: output_pb2.FinishInfo | None) -> int:
    if finish is not None and finish.reason in _COMPLETED:
        return pb.ITEM_STATUS_COMPLETED
    return pb.ITEM_STATUS_INCOMPLETE


def output_items(
    message: chat_pb2.ChatMessage,
    logprobs: Sequence[output_pb2.PositionLogprobs],
    finish: output_pb2.FinishInfo | None,
) -> list[pb.Item]:
    """One chat choice's message as output items; the last one has the finish's status
    (incomplete when cut short), the ones before it are complete."""
    items = []
    if message.HasField("reasoning") and message.reasoning:
        items.append(reasoning_item(item_id("reasoning"), message.reasoning, COMPLETED))
    content = message.content if message.HasField("content") else ""
    if content or not message.tool_calls:
        items.append(message_item(item_id("message"), content, logprobs, COMPLETED))
    for call in message.tool_calls:
        items.append(
            function_call_item(
                item_id("function_call"), call.id or call_id(), call.name, call.arguments, COMPLETED
            )
        )
    items[-1].status = item_status(finish)
    return items


def message_item(
    id_: str, text: str, logprobs: Sequence[output_pb2.PositionLogprobs], status: int
) -> pb.Item:
    part = pb.ContentItemPart(output_text=text, logprobs=logprobs)
    return pb.Item(id=id_, status=status, message=pb.MessageItem(role="assistant", content=[part]))


def reasoning_item(id_: str, text: str, status: int) -> pb.Item:
    return pb.Item(id=id_, status=status, reasoning=pb.ReasoningItem(content=[text]))


def function_call_item(id_: str, call_id: str, name: str, arguments: str, status: int) -> pb.Item:
    call = pb.FunctionCallItem(call_id=call_id, name=name, arguments=arguments)
    return pb.Item(id=id_, status=status, function_call=call)
