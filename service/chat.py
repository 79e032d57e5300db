"""Typed chat messages to prompt text: the model's (or the caller's) chat template
rendered over OpenAI-shaped message dicts, exactly as `transformers`' apply_chat_template
renders the same messages (keys whose value is None dropped, reasoning under its usual
names, tool-call arguments as objects, continue_final_message cut where the final
message ends)."""

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
CONTENT_FORMATS = ("auto", chat_template.STRING, chat_template.OPENAI)
# Appended to the final message with continue_final_message, to find where it ends.
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


@dataclass(frozen=True)
class ChatRenderSettings:
    """Server-side settings that shape rendering."""

    default_template: str | None
    trust_request_chat_template: bool = False
    special_tokens: dict[str, str] = field(default_factory=dict)
    # --chat-template-content-format: auto (detected from the template), string, openai.
    content_format: str = "auto"
    # --default-chat-template-kwargs; a request's chat_template_kwargs win.
    default_kwargs: dict[str, Any] = field(default_factory=dict)


def render_prompt(
    messages: list[chat_pb2.ChatMessage],
    options: chat_pb2.ChatTemplateOptions,
    tools: list[chat_pb2.Tool],
    settings: ChatRenderSettings,
) -> str:
    """The prompt text Chat generates from."""
    if not messages:
        raise InvalidArgument("messages must not be empty", field="messages")
    add_generation_prompt = generation_prompt_of(options)
    if add_generation_prompt and options.continue_final_message:
        raise InvalidArgument(
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
            field="continue_final_message",
        )
    source = _template_source(options, settings)
    content_format = _content_format(source, settings)
    dicts = [message_to_dict(m, content_format) for m in messages]
    final_text = _tag_final_message(dicts[-1]) if options.continue_final_message else None
    variables: dict[str, Any] = {
        **settings.special_tokens,
        **settings.default_kwargs,
        **_request_kwargs(options),
        "messages": dicts,
        "add_generation_prompt": add_generation_prompt,
        "tools": [tool_to_dict(t) for t in tools] or None,
        "documents": [dict(d.fields) for d in options.documents] or None,
    }
    text = chat_template.render(source, variables)
    if final_text is not None:
        text = _cut_after_final_message(text, final_text)
    return text


def generation_prompt_of(options: chat_pb2.ChatTemplateOptions) -> bool:
    """add_generation_prompt, default true."""
    return options.add_generation_prompt if options.HasField("add_generation_prompt") else True


def _request_kwargs(options: chat_pb2.ChatTemplateOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if options.HasField("chat_template_kwargs"):
        kwargs = MessageToDict(options.chat_template_kwargs)
    if options.reasoning_effort:
        kwargs.setdefault("reasoning_effort", options.reasoning_effort)
        kwargs.setdefault("enable_thinking", options.reasoning_effort != "none")
    return kwargs


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


def _content_format(source: str, settings: ChatRenderSettings) -> str:
    if settings.content_format == "auto":
        return chat_template.content_format(source)
    return settings.content_format


def _tag_final_message(final: dict[str, Any]) -> str:
    """Mark the end of the final message's (last) text; return that text."""
    content = final.get("content")
    if isinstance(content, list):
        for part in reversed(content):
            if "text" in part:
                text = part["text"]
                part["text"] = text + _CONTINUE_TAG
                return text
        content = None
    if content is None:
        raise InvalidArgument(
            "continue_final_message: the final message has no text content to continue.",
            field="continue_final_message",
        )
    final["content"] = content + _CONTINUE_TAG
    return content


def _cut_after_final_message(text: str, final_text: str) -> str:
    tag = _CONTINUE_TAG.strip()
    if final_text.strip() not in text or tag not in text:
        raise InvalidArgument(
            "continue_final_message: the chat template does not render the final message "
            "as given, so it cannot be continued.",
            field="continue_final_message",
        )
    position = text.rindex(tag)
    if text[position : position + len(_CONTINUE_TAG)] == _CONTINUE_TAG:
        return text[:position]
    return text[:position].rstrip()  # the template trimmed the message's trailing space


def message_to_dict(
    message: chat_pb2.ChatMessage, content_format: str = chat_template.STRING
) -> dict[str, Any]:
    """The OpenAI-shaped dict a template sees: content as one string (STRING) or a list
    of typed parts (OPENAI); keys without a value are left out, as transformers does."""
    if not message.role:
        raise InvalidArgument("every message needs a role", field="messages")
    out: dict[str, Any] = {"role": message.role}
    content = _content(message, content_format)
    if content is not None:
        out["content"] = content
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [_tool_call_dict(c) for c in message.tool_calls]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.HasField("reasoning"):
        # The names templates read it under (Qwen, DeepSeek: reasoning_content; gpt-oss:
        # thinking).
        reasoning = message.reasoning
        out = {"thinking": reasoning, **out, "reasoning_content": reasoning}
        out["reasoning"] = reasoning
    return out


def _content(message: chat_pb2.ChatMessage, content_format: str) -> str | list | None:
    if not message.parts:
        if not message.HasField("content"):
            return None
        if content_format == chat_template.OPENAI:
            return [{"type": "text", "text": message.content}]
        return message.content
    texts = []
    for part in message.parts:
        kind = part.WhichOneof("part")
        if kind != "text":
            raise InvalidArgument(
                f"Content part type `{kind}` is not supported by this model (text only).",
                field="messages",
            )
        texts.append(part.text)
    if content_format == chat_template.OPENAI:
        return [{"type": "text", "text": t} for t in texts]
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
