"""Response and ResponseEvent protobufs to OpenAI's Responses JSON: the response object
(echoing the request's settings), output items, usage, and one JSON event per
ResponseEvent named as OpenAI names it."""

from __future__ import annotations

import json
from typing import Any

from protoserve.common.v1 import chat_pb2, output_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from rest_bridge import logprobs as logprobs_json

_STATUS = {
    pb.RESPONSE_STATUS_QUEUED: "queued",
    pb.RESPONSE_STATUS_IN_PROGRESS: "in_progress",
    pb.RESPONSE_STATUS_COMPLETED: "completed",
    pb.RESPONSE_STATUS_INCOMPLETE: "incomplete",
    pb.RESPONSE_STATUS_CANCELLED: "cancelled",
    pb.RESPONSE_STATUS_FAILED: "failed",
}
_ITEM_STATUS = {
    pb.ITEM_STATUS_IN_PROGRESS: "in_progress",
    pb.ITEM_STATUS_COMPLETED: "completed",
    pb.ITEM_STATUS_INCOMPLETE: "incomplete",
}
_MODES = {
    chat_pb2.ToolChoice.MODE_NONE: "none",
    chat_pb2.ToolChoice.MODE_AUTO: "auto",
    chat_pb2.ToolChoice.MODE_REQUIRED: "required",
}
# ResponseEvent oneof field -> the event's `type`.
EVENT_TYPES = {
    "created": "response.created",
    "in_progress": "response.in_progress",
    "output_item_added": "response.output_item.added",
    "content_part_added": "response.content_part.added",
    "output_text_delta": "response.output_text.delta",
    "output_text_done": "response.output_text.done",
    "reasoning_text_delta": "response.reasoning_text.delta",
    "reasoning_text_done": "response.reasoning_text.done",
    "function_call_arguments_delta": "response.function_call_arguments.delta",
    "function_call_arguments_done": "response.function_call_arguments.done",
    "content_part_done": "response.content_part.done",
    "output_item_done": "response.output_item.done",
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
}


def response_json(response: pb.Response) -> dict[str, Any]:
    request = response.request
    sampling = request.sampling
    body = {
        "id": response.id,
        "object": "response",
        "created_at": response.created_at,
        "completed_at": (
            response.completed_at if response.status == pb.RESPONSE_STATUS_COMPLETED else None
        ),
        "status": _STATUS.get(response.status, "in_progress"),
        "error": _error(response),
        "incomplete_details": (
            {"reason": response.incomplete_reason} if response.incomplete_reason else None
        ),
        "instructions": request.instructions or None,
        "model": response.model,
        "output": [item_json(i) for i in response.output],
        "parallel_tool_calls": (
            request.parallel_tool_calls if request.HasField("parallel_tool_calls") else True
        ),
        "metadata": dict(request.metadata),
        "tool_choice": _tool_choice(request),
        "tools": [_tool(t) for t in request.tools],
        "temperature": sampling.temperature if sampling.HasField("temperature") else None,
        "top_p": sampling.top_p if sampling.HasField("top_p") else None,
        "max_output_tokens": (
            request.max_output_tokens if request.HasField("max_output_tokens") else None
        ),
        "max_tool_calls": request.max_tool_calls if request.HasField("max_tool_calls") else None,
        "previous_response_id": request.previous_response_id or None,
        "reasoning": _reasoning(request.reasoning),
        "text": {"format": _text_format(request.text_format)},
        "top_logprobs": request.top_logprobs,
        "truncation": "auto" if request.truncation == pb.TRUNCATION_AUTO else "disabled",
        "background": request.background,
        "store": request.store if request.HasField("store") else True,
    }
    if response.HasField("usage"):  # an object when present, never null (in progress: absent)
        body["usage"] = _usage(response.usage)
    if request.user:  # likewise a string when present
        body["user"] = request.user
    return body


def item_json(item: pb.Item) -> dict[str, Any]:
    status = _ITEM_STATUS.get(item.status, "completed")
    kind = item.WhichOneof("item")
    if kind == "message":
        content = [part_json(p) for p in item.message.content]
        return {
            "id": item.id,
            "type": "message",
            "role": item.message.role,
            "status": status,
            "content": content,
        }
    if kind == "reasoning":
        return {
            "id": item.id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": s} for s in item.reasoning.summary],
            "content": [{"type": "reasoning_text", "text": t} for t in item.reasoning.content],
            "encrypted_content": None,
            "status": status,
        }
    call = item.function_call
    return {
        "id": item.id,
        "type": "function_call",
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def part_json(part: pb.ContentItemPart) -> dict[str, Any]:
    kind = part.WhichOneof("part")
    if kind == "reasoning_text":
        return {"type": "reasoning_text", "text": part.reasoning_text}
    if kind == "refusal":
        return {"type": "refusal", "refusal": part.refusal}
    return {
        "type": "output_text",
        "text": part.output_text,
        "annotations": [],
        "logprobs": _logprobs(part.logprobs),
    }


def event_json(event: pb.ResponseEvent) -> dict[str, Any]:
    kind = event.WhichOneof("event")
    out: dict[str, Any] = {"type": EVENT_TYPES[kind], "sequence_number": event.sequence_number}
    value = getattr(event, kind)
    if isinstance(value, pb.Response):
        out["response"] = response_json(value)
    elif isinstance(value, pb.ItemEvent):
        out.update(output_index=value.output_index, item=item_json(value.item))
    elif isinstance(value, pb.ContentPartEvent):
        out.update(_ref(value.ref), part=part_json(value.part))
    elif kind == "function_call_arguments_delta":
        out.update(
            item_id=value.ref.item_id, output_index=value.ref.output_index, delta=value.delta
        )
    elif kind == "function_call_arguments_done":
        out.update(
            item_id=value.ref.item_id,
            output_index=value.ref.output_index,
            name=value.name,
            arguments=value.text,
        )
    elif isinstance(value, pb.TextDelta):
        out.update(_ref(value.ref), delta=value.delta)
        if kind == "output_text_delta":
            out["logprobs"] = _logprobs(value.logprobs)
    else:  # TextDone of output_text / reasoning_text
        out.update(_ref(value.ref), text=value.text)
        if kind == "output_text_done":
            out["logprobs"] = []
    return out


def _ref(ref: pb.ItemRef) -> dict[str, Any]:
    return {
        "item_id": ref.item_id,
        "output_index": ref.output_index,
        "content_index": ref.content_index,
    }


def _logprobs(entries) -> list[dict]:
    return logprobs_json.chat_logprobs(entries)["content"] if entries else []


def _usage(usage: output_pb2.Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        # No explicit cache writes are billed here: the prefix cache keeps every prompt.
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _error(response: pb.Response) -> dict[str, str] | None:
    if not response.HasField("error"):
        return None
    return {"code": response.error.code, "message": response.error.message}


def _tool_choice(request: pb.CreateResponseRequest) -> str | dict[str, str]:
    if not request.HasField("tool_choice"):
        return "auto"
    choice = request.tool_choice
    if choice.WhichOneof("choice") == "function_name":
        return {"type": "function", "name": choice.function_name}
    return _MODES.get(choice.mode, "auto")


def _tool(tool: chat_pb2.Tool) -> dict[str, Any]:
    parameters = json.loads(tool.parameters_json) if tool.HasField("parameters_json") else None
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description or None,
        "parameters": parameters,
        "strict": tool.strict,
    }


def _reasoning(options: pb.ReasoningOptions) -> dict[str, Any] | None:
    if not options.effort and not options.summary:
        return None
    return {"effort": options.effort or None, "summary": options.summary or None}


def _text_format(fmt: pb.TextFormat) -> dict[str, Any]:
    kind = fmt.WhichOneof("format")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = fmt.json_schema
        out = {
            "type": "json_schema",
            "name": schema.name,
            "schema": json.loads(schema.schema),
            "strict": schema.strict,
        }
        if schema.description:
            out["description"] = schema.description
        return out
    return {"type": "text"}
