"""Typed chat messages to prompt text: the model's (or the caller's) chat template
rendered over OpenAI-shaped message dicts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict

from protoserve.common.v1 import chat_pb2
from service import chat_template
from service.errors import InvalidArgument

NO_TEMPLATE_MESSAGE = (
    "This model has no chat template: pass one with --chat-template (or a per-request "
    "chat_template when the server trusts them)."
)


@dataclass(frozen=True)
class ChatRenderSettings:
    """Server-side settings that shape rendering."""

    default_template: str | None
    trust_request_chat_template: bool = False
    special_tokens: dict[str, str] = field(default_factory=dict)


def render_prompt(
    messages: list[chat_pb2.ChatMessage],
    options: chat_pb2.ChatTemplateOptions,
    tools: list[chat_pb2.Tool],
    settings: ChatRenderSettings,
) -> str:
    """The prompt text Chat generates from."""
    if not messages:
        raise InvalidArgument("messages must not be empty", field="messages")
    add_generation_prompt = (
        options.add_generation_prompt if options.HasField("add_generation_prompt") else True
    )
    if add_generation_prompt and options.continue_final_message:
        raise InvalidArgument(
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
            field="continue_final_message",
        )
    source = _template_source(options, settings)
    dicts = [message_to_dict(m) for m in messages]
    variables: dict[str, Any] = {
        **settings.special_tokens,
        "messages": dicts,
        "add_generation_prompt": add_generation_prompt,
        "tools": [tool_to_dict(t) for t in tools] or None,
        "documents": [dict(d.fields) for d in options.documents] or None,
    }
    if options.reasoning_effort:
        variables["reasoning_effort"] = options.reasoning_effort
    if options.HasField("chat_template_kwargs"):
        variables.update(MessageToDict(options.chat_template_kwargs))
    text = chat_template.render(source, variables)
    if options.continue_final_message:
        text = _cut_after_final_message(text, dicts[-1])
    return text


def _template_source(options: chat_pb2.ChatTemplateOptions, settings: ChatRenderSettings) -> str:
    if options.chat_template:
        if not settings.trust_request_chat_template:
            raise InvalidArgument(
                "Chat template is passed with request, but --trust-request-chat-template "
                "is not set. Refused request with untrusted chat template.",
                field="chat_template",
            )
        return options.chat_template
    if not settings.default_template:
        raise InvalidArgument(NO_TEMPLATE_MESSAGE, field="chat_template")
    return settings.default_template


def _cut_after_final_message(text: str, final: dict[str, Any]) -> str:
    content = final.get("content") or ""
    position = text.rfind(content) if content else -1
    if position < 0:
        raise InvalidArgument(
            "continue_final_message: the final message's content is not in the rendered prompt",
            field="continue_final_message",
        )
    return text[: position + len(content)]


def message_to_dict(message: chat_pb2.ChatMessage) -> dict[str, Any]:
    """OpenAI-shaped dict with string content, as most templates expect."""
    if not message.role:
        raise InvalidArgument("every message needs a role", field="messages")
    out: dict[str, Any] = {"role": message.role, "content": _content_text(message)}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [_tool_call_dict(c) for c in message.tool_calls]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.HasField("reasoning"):
        out["reasoning"] = out["reasoning_content"] = message.reasoning
    return out


def _content_text(message: chat_pb2.ChatMessage) -> str | None:
    if not message.parts:
        return message.content if message.HasField("content") else None
    texts = []
    for part in message.parts:
        kind = part.WhichOneof("part")
        if kind != "text":
            raise InvalidArgument(
                f"Content part type `{kind}` is not supported by this model (text only).",
                field="messages",
            )
        texts.append(part.text)
    return "\n".join(texts)


def _tool_call_dict(call: chat_pb2.ToolCall) -> dict[str, Any]:
    try:
        arguments: Any = json.loads(call.arguments) if call.arguments else {}
    except json.JSONDecodeError:
        arguments = call.arguments
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def tool_to_dict(tool: chat_pb2.Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    if tool.HasField("parameters_json"):
        try:
            function["parameters"] = json.loads(tool.parameters_json)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                f"tools: parameters of `{tool.name}` are not valid JSON: {exc}", field="tools"
            ) from exc
    return {"type": "function", "function": function}
