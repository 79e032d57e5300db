"""OpenAI chat messages, tools and tool_choice (JSON) to their typed protobuf form."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Literal

from google.protobuf import struct_pb2
from pydantic import BaseModel, ConfigDict

from protoserve.common.v1 import chat_pb2
from rest_bridge.errors import bad_request


class _Url(BaseModel):
    url: str
    detail: str | None = None


class _InputAudio(BaseModel):
    data: str
    format: str = ""


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    image_url: _Url | None = None
    input_audio: _InputAudio | None = None
    audio_url: _Url | None = None
    video_url: _Url | None = None


class _FunctionCall(BaseModel):
    name: str
    arguments: str | dict[str, Any] = ""


class ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = ""
    type: str = "function"
    function: _FunctionCall


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None


class _FunctionDef(BaseModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(BaseModel):
    type: Literal["function"] = "function"
    function: _FunctionDef


def message_proto(message: ChatMessageIn) -> chat_pb2.ChatMessage:
    out = chat_pb2.ChatMessage(
        role=message.role, name=message.name or "", tool_call_id=message.tool_call_id or ""
    )
    if isinstance(message.content, str):
        out.content = message.content
    elif message.content is not None:
        out.parts.extend(_part_proto(p) for p in message.content)
    for call in message.tool_calls or []:
        arguments = call.function.arguments
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        out.tool_calls.add(id=call.id, name=call.function.name, arguments=arguments)
    reasoning = message.reasoning if message.reasoning is not None else message.reasoning_content
    if reasoning is not None:
        out.reasoning = reasoning
    return out


def _part_proto(part: ContentPart) -> chat_pb2.ContentPart:
    if part.type == "text":
        return chat_pb2.ContentPart(text=part.text or "")
    if part.type == "image_url" and part.image_url:
        return chat_pb2.ContentPart(
            image_url=chat_pb2.ImageUrl(url=part.image_url.url, detail=part.image_url.detail or "")
        )
    if part.type == "input_audio" and part.input_audio:
        try:
            data = base64.b64decode(part.input_audio.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_request("input_audio.data is not valid base64.", "messages") from exc
        return chat_pb2.ContentPart(
            input_audio=chat_pb2.InputAudio(data=data, format=part.input_audio.format)
        )
    if part.type in ("audio_url", "video_url") and getattr(part, part.type):
        return chat_pb2.ContentPart(
            **{part.type: chat_pb2.MediaUrl(url=getattr(part, part.type).url)}
        )
    raise bad_request(f"Unsupported or incomplete content part of type {part.type!r}.", "messages")


def tool_proto(tool: ToolIn) -> chat_pb2.Tool:
    function = tool.function
    out = chat_pb2.Tool(
        name=function.name, description=function.description or "", strict=bool(function.strict)
    )
    if function.parameters is not None:
        out.parameters_json = json.dumps(function.parameters)
    return out


def tool_choice_proto(choice: str | dict[str, Any] | None) -> chat_pb2.ToolChoice | None:
    if choice is None:
        return None
    modes = {
        "none": chat_pb2.ToolChoice.MODE_NONE,
        "auto": chat_pb2.ToolChoice.MODE_AUTO,
        "required": chat_pb2.ToolChoice.MODE_REQUIRED,
    }
    if isinstance(choice, str):
        if choice not in modes:
            raise bad_request(
                f"tool_choice must be one of {sorted(modes)} or a named function.", "tool_choice"
            )
        return chat_pb2.ToolChoice(mode=modes[choice])
    name = (choice.get("function") or {}).get("name")
    if choice.get("type") != "function" or not name:
        raise bad_request(
            "tool_choice.function.name is required for a named tool choice.", "tool_choice"
        )
    return chat_pb2.ToolChoice(function_name=name)


def template_options(
    *,
    add_generation_prompt: bool,
    continue_final_message: bool,
    chat_template: str | None,
    chat_template_kwargs: dict[str, Any] | None,
    documents: list[dict[str, str]] | None = None,
    reasoning_effort: str | None = None,
) -> chat_pb2.ChatTemplateOptions:
    options = chat_pb2.ChatTemplateOptions(
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
        chat_template=chat_template or "",
        reasoning_effort=reasoning_effort or "",
    )
    for document in documents or []:
        options.documents.add(fields=document)
    if chat_template_kwargs:
        kwargs = struct_pb2.Struct()
        kwargs.update(chat_template_kwargs)
        options.chat_template_kwargs.CopyFrom(kwargs)
    return options
