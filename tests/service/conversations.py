"""OpenAI-shaped conversations and tools shared by the chat tests, and their typed
protobuf form (what the bridge builds from the same JSON)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from protoserve.common.v1 import chat_pb2

TEMPLATES = Path(__file__).parent.parent / "data" / "chat_templates"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a timezone.",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string"}},
            "required": ["timezone"],
        },
    },
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]


def template(name: str) -> str:
    return (TEMPLATES / name).read_text()


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


SIMPLE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Tell me a joke."},
]
ONE_TOOL_CALL = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [call("call0abcd", "get_weather", {"city": "Paris", "unit": "celsius"})],
    },
    {"role": "tool", "tool_call_id": "call0abcd", "content": '{"temperature": 21}'},
    {"role": "assistant", "content": "It is 21 degrees in Paris."},
    {"role": "user", "content": "And in Oslo?"},
]
# Qwen3: reasoning of the turn in progress, parallel calls, two tool results in a row.
PARALLEL_CALLS_WITH_REASONING = [
    {"role": "user", "content": "Weather and time in Tokyo?"},
    {
        "role": "assistant",
        "content": "",
        "reasoning_content": "Two tools are needed: weather and time.",
        "tool_calls": [
            call("c1", "get_weather", {"city": "Tokyo"}),
            call("c2", "get_time", {"timezone": "Asia/Tokyo"}),
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "sunny, 25C"},
    {"role": "tool", "tool_call_id": "c2", "content": "14:05"},
]
MISTRAL_TOOL_TURN = [
    {"role": "user", "content": "Weather in Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [call("a1B2c3D4e", "get_weather", {"city": "Rome"})],
    },
    {"role": "tool", "tool_call_id": "a1B2c3D4e", "content": '{"temperature": 30}'},
    {"role": "assistant", "content": "It is 30 degrees in Rome."},
    {"role": "user", "content": "Thanks! And Milan?"},
]
CONTENT_PARTS = [
    {
        "role": "user",
        "content": [{"type": "text", "text": "Describe"}, {"type": "text", "text": "this."}],
    },
    {"role": "assistant", "content": [{"type": "text", "text": "A calm sea."}]},
    {"role": "user", "content": "Shorter, please."},
]


def as_proto(messages: list[dict[str, Any]]) -> list[chat_pb2.ChatMessage]:
    """As the bridge sends them: tool-call arguments as JSON text, reasoning_content as
    `reasoning`."""
    out = []
    for message in copy.deepcopy(messages):
        proto = chat_pb2.ChatMessage(
            role=message["role"], tool_call_id=message.get("tool_call_id", "")
        )
        content = message.get("content")
        if isinstance(content, str):
            proto.content = content
        elif content is not None:
            proto.parts.extend(chat_pb2.ContentPart(text=p["text"]) for p in content)
        for item in message.get("tool_calls") or ():
            function = item["function"]
            proto.tool_calls.add(
                id=item["id"], name=function["name"], arguments=json.dumps(function["arguments"])
            )
        reasoning = message.get("reasoning_content", message.get("reasoning"))
        if reasoning is not None:
            proto.reasoning = reasoning
        out.append(proto)
    return out


def tools_proto(tools: list[dict[str, Any]]) -> list[chat_pb2.Tool]:
    return [
        chat_pb2.Tool(
            name=t["function"]["name"],
            description=t["function"].get("description", ""),
            parameters_json=json.dumps(t["function"]["parameters"]),
        )
        for t in tools
    ]
