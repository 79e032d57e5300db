"""ChatStream messages -> the Responses event sequence, as OpenAI streams it:

    created, in_progress,
    per output item: output_item.added, [content_part.added], deltas
      (output_text / reasoning_text / function_call_arguments), the matching .done,
      [content_part.done], output_item.done,
    then completed (or incomplete).

Reasoning comes first, then the message, then function calls; a new kind of delta closes
the open item. Sequence numbers count from 0, one per event."""

from __future__ import annotations

from dataclasses import dataclass, field

from protoserve.common.v1 import output_pb2
from protoserve.generate.v1 import generate_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from service.responses import output

IN_PROGRESS = pb.ITEM_STATUS_IN_PROGRESS


@dataclass
class _Open:
    """The output item being streamed."""

    kind: str  # "message", "reasoning" or "function_call"
    item_id: str
    output_index: int
    text: str = ""  # the text, reasoning or arguments so far
    logprobs: list[output_pb2.PositionLogprobs] = field(default_factory=list)
    call_index: int = -1  # function_call: the chat pipeline's tool-call index
    call_id: str = ""
    name: str = ""

    @property
    def ref(self) -> pb.ItemRef:
        return pb.ItemRef(item_id=self.item_id, output_index=self.output_index)

    def item(self, status: int) -> pb.Item:
        if self.kind == "message":
            return output.message_item(self.item_id, self.text, self.logprobs, status)
        if self.kind == "reasoning":
            return output.reasoning_item(self.item_id, self.text, status)
        return output.function_call_item(self.item_id, self.call_id, self.name, self.text, status)


class ResponseEvents:
    """Feed it the ChatStream messages; it returns the events each one makes."""

    def __init__(self, start: pb.Response) -> None:
        self.start = start
        self.items: list[pb.Item] = []  # closed items, in output order
        self.finish: output_pb2.FinishInfo | None = None
        self.usage = output_pb2.Usage()
        self._sequence = 0
        self._open: _Open | None = None
        self._pending_logprobs: list[output_pb2.PositionLogprobs] = []

    def started(self) -> list[pb.ResponseEvent]:
        return [self._event(created=self.start), self._event(in_progress=self.start)]

    def feed(self, message: generate_pb2.ChatStreamResponse) -> list[pb.ResponseEvent]:
        kind = message.WhichOneof("event")
        if kind == "end":
            self.usage.CopyFrom(message.end.usage)
        if kind != "delta":
            return []
        delta = message.delta
        events: list[pb.ResponseEvent] = []
        if delta.reasoning:
            events += self._text("reasoning", delta.reasoning, [])
        self._pending_logprobs += delta.logprobs
        if delta.content or (self._pending_logprobs and self._is_open("message")):
            events += self._text("message", delta.content, self._take_logprobs())
        for call in delta.tool_calls:
            events += self._tool_call(call)
        if delta.HasField("finish"):
            self.finish = delta.finish
        return events

    def complete(self) -> tuple[list[pb.ResponseEvent], pb.Response]:
        """The closing events and the finished response (the last event carries it)."""
        events = []
        if self._open is None and not self.items:  # no output at all: an empty message
            events += self._open_item("message")
        events += self._close(output.item_status(self.finish))
        response = output.finished(self.start, self.items, self.finish, self.usage)
        if response.status == pb.RESPONSE_STATUS_COMPLETED:
            events.append(self._event(completed=response))
        else:
            events.append(self._event(incomplete=response))
        return events, response

    # ----- items -----------------------------------------------------------------------
    def _is_open(self, kind: str) -> bool:
        return self._open is not None and self._open.kind == kind

    def _take_logprobs(self) -> list[output_pb2.PositionLogprobs]:
        taken, self._pending_logprobs = self._pending_logprobs, []
        return taken

    def _text(self, kind: str, text: str, logprobs) -> list[pb.ResponseEvent]:
        events = [] if self._is_open(kind) else self._close() + self._open_item(kind)
        item = self._open
        item.text += text
        item.logprobs += logprobs
        ref = pb.ItemRef(item_id=item.item_id, output_index=item.output_index)
        if kind == "message":
            delta = pb.TextDelta(ref=ref, delta=text, logprobs=logprobs)
            return events + [self._event(output_text_delta=delta)]
        return events + [self._event(reasoning_text_delta=pb.TextDelta(ref=ref, delta=text))]

    def _tool_call(self, call: generate_pb2.ToolCallDelta) -> list[pb.ResponseEvent]:
        events = []
        if not (self._is_open("function_call") and self._open.call_index == call.index):
            events += self._close()
            events += self._open_item(
                "function_call", call.index, call.id or output.call_id(), call.name
            )
        if call.arguments:
            self._open.text += call.arguments
            delta = pb.TextDelta(ref=self._open.ref, delta=call.arguments)
            events.append(self._event(function_call_arguments_delta=delta))
        return events

    def _open_item(self, kind: str, call_index=-1, call_id="", name="") -> list[pb.ResponseEvent]:
        index = len(self.items)
        item = _Open(kind, output.item_id(kind), index, call_index=call_index, call_id=call_id)
        item.name = name
        self._open = item
        added = pb.ItemEvent(output_index=index, item=_empty(item))
        events = [self._event(output_item_added=added)]
        part = _part(item, "", [])
        if part is not None:
            added_part = pb.ContentPartEvent(ref=item.ref, part=part)
            events.append(self._event(content_part_added=added_part))
        return events

    def _close(self, status: int = pb.ITEM_STATUS_COMPLETED) -> list[pb.ResponseEvent]:
        item, self._open = self._open, None
        if item is None:
            return []
        if item.kind == "message":
            events = [self._event(output_text_done=pb.TextDone(ref=item.ref, text=item.text))]
        elif item.kind == "reasoning":
            events = [self._event(reasoning_text_done=pb.TextDone(ref=item.ref, text=item.text))]
        else:
            done = pb.TextDone(ref=item.ref, text=item.text, name=item.name)
            events = [self._event(function_call_arguments_done=done)]
        part = _part(item, item.text, item.logprobs)
        if part is not None:
            events.append(
                self._event(content_part_done=pb.ContentPartEvent(ref=item.ref, part=part))
            )
        final = item.item(status)
        self.items.append(final)
        events.append(
            self._event(output_item_done=pb.ItemEvent(output_index=item.output_index, item=final))
        )
        return events

    def _event(self, **event) -> pb.ResponseEvent:
        message = pb.ResponseEvent(sequence_number=self._sequence, **event)
        self._sequence += 1
        return message


def _empty(item: _Open) -> pb.Item:
    """The item as output_item.added shows it: in progress, no content yet."""
    empty = item.item(IN_PROGRESS)
    if item.kind == "message":
        del empty.message.content[:]
    elif item.kind == "reasoning":
        del empty.reasoning.content[:]
    return empty


def _part(item: _Open, text: str, logprobs) -> pb.ContentItemPart | None:
    if item.kind == "message":
        return pb.ContentItemPart(output_text=text, logprobs=logprobs)
    if item.kind == "reasoning":
        return pb.ContentItemPart(reasoning_text=text)
    return None
