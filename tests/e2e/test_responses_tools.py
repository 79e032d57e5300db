"""The Responses API with function tools and reasoning, on the tools server (hermes tool
parser, qwen3 reasoning parser): forced tool choices come back as function_call items
whose arguments validate; streamed argument deltas add up to the done event; a
function_call_output turn continues the conversation; reasoning becomes a reasoning
item before the message (shaped by a grammar, as in test_tools.py)."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.e2e.test_tools import SCHEMAS, THINK

pytestmark = pytest.mark.e2e

TOOLS = [
    {"type": "function", "name": n, "description": f"{n} tool", "parameters": s}
    for n, s in SCHEMAS.items()
]
ASK = "What is the weather in Paris, and the time there?"
COMMON = {"model": "demo", "max_output_tokens": 400, "temperature": 1.0}


@pytest.fixture(scope="module")
def client(tool_servers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=tool_servers.openai_base_url, api_key="unused", max_retries=0, timeout=120
    )


def function_calls(response) -> list:
    return [item for item in response.output if item.type == "function_call"]


def assert_valid(calls, names=tuple(SCHEMAS)) -> None:
    assert calls, "no function_call item"
    for call in calls:
        assert call.call_id and call.name in names and call.status == "completed"
        jsonschema.validate(json.loads(call.arguments), SCHEMAS[call.name])


@pytest.mark.parametrize("seed", [0, 1])
def test_required_tool_choice_returns_function_call_items(client, seed) -> None:
    reply = client.responses.create(
        input=ASK, tools=TOOLS, tool_choice="required", extra_body={"seed": seed}, **COMMON
    )
    assert reply.status == "completed"
    assert_valid(function_calls(reply))


def test_named_tool_choice_and_a_tool_result_turn(client) -> None:
    first = client.responses.create(
        input=ASK, tools=TOOLS, tool_choice={"type": "function", "name": "get_time"}, **COMMON
    )
    calls = function_calls(first)
    assert_valid(calls, names=("get_time",))
    second = client.responses.create(
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "12:00"}],
        tools=TOOLS, tool_choice="none", **COMMON,
    )  # fmt: skip
    assert second.status in ("completed", "incomplete")
    assert [item.type for item in second.output] == ["message"]
    assert second.usage.input_tokens > first.usage.input_tokens


def test_streamed_arguments_add_up_to_the_done_event(client) -> None:
    request = {"input": ASK, "tools": TOOLS, "tool_choice": "required", **COMMON}
    deltas: dict[str, str] = {}
    done: dict[str, str] = {}
    final = None
    for event in client.responses.create(stream=True, extra_body={"seed": 5}, **request):
        if event.type == "response.function_call_arguments.delta":
            deltas[event.item_id] = deltas.get(event.item_id, "") + event.delta
        elif event.type == "response.function_call_arguments.done":
            done[event.item_id] = event.arguments
        elif event.type == "response.completed":
            final = event.response
    assert done and deltas == done
    assert_valid(function_calls(final))
    assert {c.id: c.arguments for c in function_calls(final)} == done


def test_reasoning_becomes_a_reasoning_item(client) -> None:
    reply = client.responses.create(
        input=ASK, extra_body={"seed": 2, "structured_outputs": THINK}, **COMMON
    )
    kinds = [item.type for item in reply.output]
    assert kinds == ["reasoning", "message"]
    reasoning = reply.output[0].content[0].text
    assert reasoning and "<think>" not in reasoning and reply.output_text
    assert 0 < reply.usage.output_tokens_details.reasoning_tokens < reply.usage.output_tokens
