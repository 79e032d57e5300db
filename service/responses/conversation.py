"""Responses items <-> chat messages. Input (a string or items) and a response's output
both become the messages the chat template renders: message items keep their role,
function_call items are the tool calls of an assistant message, function_call_output
items are tool messages, and a reasoning item is the reasoning of the assistant message
that follows it."""

from __future__ import annotations

from collections.abc import Iterable

from protoserve.common.v1 import chat_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from service.errors import InvalidArgument

ASSISTANT = "assistant"
INPUT_ROLES = ("user", "system", "developer", "assistant")


def input_messages(request: pb.CreateResponseRequest) -> list[chat_pb2.ChatMessage]:
    """This turn's input as chat messages (without instructions)."""
    kind = request.WhichOneof("input")
    if kind == "text":
        return [chat_pb2.ChatMessage(role="user", content=request.text)]
    if kind == "items" and request.items.items:
        return items_to_messages(request.items.items, field="input")
    raise InvalidArgument("input must be a non-empty string or list of items.", "input")


def items_to_messages(items: Iterable[pb.Item], field: str = "input") -> list[chat_pb2.ChatMessage]:
    builder = _Builder(field)
    for index, item in enumerate(items):
        builder.add(index, item)
    return builder.finish()


class _Builder:
    def __init__(self, field: str) -> None:
        self.field = field
        self.messages: list[chat_pb2.ChatMessage] = []
        self.reasoning: list[str] = []  # waits for the next assistant message

    def add(self, index: int, item: pb.Item) -> None:
        kind = item.WhichOneof("item")
        where = f"{self.field}[{index}]"
        if kind == "message":
            self._message(item.message, where)
        elif kind == "function_call":
            self._function_call(item.function_call, where)
        elif kind == "function_call_output":
            output = item.function_call_output
            if not output.call_id:
                raise InvalidArgument(f"{where}.call_id is required.", self.field)
            self.messages.append(
                chat_pb2.ChatMessage(
                    role="tool", content=output.output, tool_call_id=output.call_id
                )
            )
        elif kind == "reasoning":
            self.reasoning.extend(item.reasoning.content)
        else:
            raise InvalidArgument(f"{where} has no item (message, function_call, …).", self.field)

    def _message(self, item: pb.MessageItem, where: str) -> None:
        if item.role not in INPUT_ROLES:
            raise InvalidArgument(
                f"{where}.role must be one of {', '.join(INPUT_ROLES)}; got {item.role!r}.",
                self.field,
            )
        message = chat_pb2.ChatMessage(role=item.role)
        parts = [_part(p, where, self.field) for p in item.content]
        if len(parts) == 1 and parts[0].WhichOneof("part") == "text":
            message.content = parts[0].text
        else:
            message.parts.extend(parts)
        if item.role == ASSISTANT:
            self._take_reasoning(message)
        self.messages.append(message)

    def _function_call(self, call: pb.FunctionCallItem, where: str) -> None:
        if not call.call_id or not call.name:
            raise InvalidArgument(f"{where} needs call_id and name.", self.field)
        last = self.messages[-1] if self.messages else None
        if last is None or last.role != ASSISTANT or self.reasoning:
            last = chat_pb2.ChatMessage(role=ASSISTANT)
            self._take_reasoning(last)
            self.messages.append(last)
        last.tool_calls.add(id=call.call_id, name=call.name, arguments=call.arguments)

    def _take_reasoning(self, message: chat_pb2.ChatMessage) -> None:
        if self.reasoning:
            message.reasoning = "\n".join(self.reasoning)
            self.reasoning = []

    def finish(self) -> list[chat_pb2.ChatMessage]:
        if self.reasoning:  # reasoning that no answer followed
            message = chat_pb2.ChatMessage(role=ASSISTANT)
            self._take_reasoning(message)
            self.messages.append(message)
        return self.messages


def _part(part: pb.ContentItemPart, where: str, field: str) -> chat_pb2.ContentPart:
    kind = part.WhichOneof("part")
    if kind in ("input_text", "output_text", "refusal"):
        return chat_pb2.ContentPart(text=getattr(part, kind))
    if kind == "input_image":
        return chat_pb2.ContentPart(image_url=part.input_image)
    raise InvalidArgument(f"{where}: content part {kind!r} cannot be input.", field)
