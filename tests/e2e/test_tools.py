"""Tool calling and reasoning end to end on the random-weight demo model, through the
official openai SDK (via the bridge) and gRPC stubs: forced tool choices return calls
whose arguments validate against the tool's schema; streamed calls reassemble into the
unary result; a conversation carrying a tool result renders through the template; auto
tool choice and reasoning parse what the model writes (here shaped by a grammar, since
a random model never writes a tool call or a think block by itself)."""

from __future__ import annotations

import json

import grpc
import httpx
import jsonschema
import openai
import pytest

from protoserve.common.v1 import chat_pb2, params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 12},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "minLength": 1, "maxLength": 16}},
    "required": ["timezone"],
    "additionalProperties": False,
}
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
TOOLS = [
    {"type": "function", "function": {"name": n, "description": f"{n} tool", "parameters": s}}
    for n, s in SCHEMAS.items()
]
ASK = [{"role": "user", "content": "What is the weather in Paris, and the time there?"}]
COMMON = {"model": "demo", "max_tokens": 400, "temperature": 1.0}


@pytest.fixture(scope="module")
def client(tool_servers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=tool_servers.openai_base_url, api_key="unused", max_retries=0, timeout=120
    )


@pytest.fixture(scope="module")
def stub(tool_servers):
    with grpc.insecure_channel(tool_servers.grpc_target) as channel:
        yield generate_pb2_grpc.GenerateServiceStub(channel)


def assert_valid_calls(calls, names=tuple(SCHEMAS)) -> None:
    assert calls, "no tool call"
    for call in calls:
        assert call.id.startswith("chatcmpl-tool-") and call.type == "function"
        assert call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def calls_of(calls) -> list[tuple[str, str]]:
    return [(c.function.name, c.function.arguments) for c in calls]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_required_tool_choice_returns_valid_calls(client, seed) -> None:
    reply = client.chat.completions.create(
        messages=ASK, tools=TOOLS, tool_choice="required", seed=seed, **COMMON
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.content == ""
    assert_valid_calls(choice.message.tool_calls)


@pytest.mark.parametrize("name", ["get_weather", "get_time"])
def test_named_tool_choice_returns_that_call(client, name) -> None:
    reply = client.chat.completions.create(
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": name}},
        seed=7,
        **COMMON,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"  # as OpenAI, for a forced function
    assert [c.function.name for c in choice.message.tool_calls] == [name]
    assert_valid_calls(choice.message.tool_calls, names=(name,))


def test_parallel_tool_calls_false_returns_one_call(client) -> None:
    for seed in range(3):
        reply = client.chat.completions.create(
            messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
            seed=seed, **COMMON,
        )  # fmt: skip
        assert len(reply.choices[0].message.tool_calls) == 1


def test_streamed_tool_calls_reassemble_into_the_unary_calls(client) -> None:
    request = {"messages": ASK, "tools": TOOLS, "tool_choice": "required", "seed": 11, **COMMON}
    unary = client.chat.completions.create(**request).choices[0].message.tool_calls
    calls: dict[int, dict] = {}
    finish = None
    for chunk in client.chat.completions.create(stream=True, **request):
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for fragment in choice.delta.tool_calls or ():
                if fragment.index not in calls:  # id, type and name first, arguments ""
                    assert fragment.id and fragment.type == "function"
                    assert fragment.function.name and fragment.function.arguments == ""
                    calls[fragment.index] = {"name": fragment.function.name, "arguments": ""}
                else:
                    assert fragment.id is None and fragment.function.name is None
                    calls[fragment.index]["arguments"] += fragment.function.arguments
    assert finish == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in calls.values()] == calls_of(unary)
    with client.chat.completions.stream(**request) as stream:  # the SDK's own accumulator
        final = stream.get_final_completion()
    assert calls_of(final.choices[0].message.tool_calls) == calls_of(unary)
    assert_valid_calls(final.choices[0].message.tool_calls)


def test_conversation_with_a_tool_result(client) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    first = (
        client.chat.completions.create(
            messages=ASK, tools=TOOLS, tool_choice=named, seed=3, **COMMON
        )
        .choices[0]
        .message
    )
    call = first.tool_calls[0]
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "The weather tool answers this.",
            "tool_calls": [call.model_dump(exclude_none=True)],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
    ]
    reply = client.chat.completions.create(
        messages=history, tools=TOOLS, tool_choice="none", seed=1, max_tokens=8,
        extra_body={"return_prompt_text": True}, model="demo",
    )  # fmt: skip
    prompt = reply.model_extra["prompt_text"]
    arguments = json.dumps(json.loads(call.function.arguments), ensure_ascii=False)
    assert '<tool_call>\n{"name": "get_weather", "arguments": ' + arguments in prompt
    assert "<|im_start|>user\n<tool_response>\n" + '{"temperature": 21}\n</tool_response>' in prompt
    assert "<think>\nThe weather tool answers this.\n</think>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content


def hermes_grammar(prefix: str = "/[a-z]{2,8}/") -> str:
    """A Qwen/Hermes-style answer: some text, then one <tool_call> block (its JSON
    without free whitespace, which a random model would fill its budget with)."""
    call = {
        "x-guidance": {"whitespace_flexible": False},
        "type": "object",
        "properties": {"name": {"const": "get_weather"}, "arguments": WEATHER},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
    return f'start: {prefix} "\\n<tool_call>\\n" %json {json.dumps(call)} "\\n</tool_call>"'


def test_auto_tool_choice_parses_hermes_calls(client) -> None:
    request = {
        "messages": ASK, "tools": TOOLS, "seed": 5, **COMMON,
        "extra_body": {"structured_outputs": {"grammar": hermes_grammar()}},
    }  # fmt: skip
    message = client.chat.completions.create(**request).choices[0]
    assert message.finish_reason == "tool_calls"
    assert message.message.content and message.message.content.isalpha()
    assert_valid_calls(message.message.tool_calls, names=("get_weather",))
    content, calls, finish = "", {}, None
    for chunk in client.chat.completions.create(stream=True, **request):
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            content += choice.delta.content or ""
            for fragment in choice.delta.tool_calls or ():
                entry = calls.setdefault(fragment.index, [fragment.function.name, ""])
                entry[1] += fragment.function.arguments or ""
    assert finish == "tool_calls" and content == message.message.content
    assert [tuple(c) for c in calls.values()] == calls_of(message.message.tool_calls)


THINK = {"regex": "<think>[a-z ]{3,30}</think>[a-z ]{3,20}"}


def test_reasoning_is_split_from_content_and_counted(client) -> None:
    request = {"messages": ASK, "seed": 2, **COMMON, "extra_body": {"structured_outputs": THINK}}
    reply = client.chat.completions.create(**request)
    message = reply.choices[0].message
    reasoning = message.model_extra["reasoning"]
    assert reasoning and "<think>" not in reasoning and message.content
    details = reply.usage.completion_tokens_details
    assert 0 < details.reasoning_tokens < reply.usage.completion_tokens
    streamed = {"reasoning": "", "content": ""}
    for chunk in client.chat.completions.create(stream=True, **request):
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            if extra.get("reasoning"):
                assert not streamed["content"], "reasoning streams before content"
                streamed["reasoning"] += extra["reasoning"]
            streamed["content"] += choice.delta.content or ""
    assert streamed == {"reasoning": reasoning, "content": message.content}
    hidden = client.chat.completions.create(
        messages=ASK, seed=2, **COMMON,
        extra_body={"structured_outputs": THINK, "include_reasoning": False},
    ).choices[0].message  # fmt: skip
    assert "reasoning" not in (hidden.model_extra or {}) and hidden.content == message.content


def grpc_request(**fields) -> pb.ChatRequest:
    request = pb.ChatRequest(
        messages=[chat_pb2.ChatMessage(role="user", content=ASK[0]["content"])],
        tools=[
            chat_pb2.Tool(name=name, description=f"{name} tool", parameters_json=json.dumps(schema))
            for name, schema in SCHEMAS.items()
        ],
        sampling=params_pb2.SamplingParams(temperature=1.0, seed=21),
        stopping=params_pb2.StoppingParams(max_tokens=400),
    )
    for name, value in fields.items():
        getattr(request, name).CopyFrom(value)
    return request


@pytest.mark.parametrize(
    "choice",
    [
        chat_pb2.ToolChoice(mode=chat_pb2.ToolChoice.MODE_REQUIRED),
        chat_pb2.ToolChoice(function_name="get_time"),
    ],  # fmt: skip
    ids=["required", "named"],
)
def test_forced_tool_choice_through_grpc(stub, choice) -> None:
    request = grpc_request(tool_choice=choice)
    reply = stub.Chat(request, timeout=120)
    calls = list(reply.choices[0].message.tool_calls)
    assert calls
    for call in calls:
        jsonschema.validate(json.loads(call.arguments), SCHEMAS[call.name])
    if choice.function_name:
        assert [c.name for c in calls] == ["get_time"]
    streamed: dict[int, list[str]] = {}
    for message in stub.ChatStream(request, timeout=120):
        if message.WhichOneof("event") != "delta":
            continue
        for fragment in message.delta.tool_calls:
            if fragment.id:
                streamed[fragment.index] = [fragment.name, ""]
            streamed[fragment.index][1] += fragment.arguments
    assert [tuple(c) for c in streamed.values()] == [(c.name, c.arguments) for c in calls]


def test_tool_result_and_reasoning_through_grpc(stub) -> None:
    request = grpc_request(
        tool_choice=chat_pb2.ToolChoice(mode=chat_pb2.ToolChoice.MODE_NONE),
        output=params_pb2.OutputOptions(return_prompt_text=True),
        structured_output=params_pb2.StructuredOutput(regex=THINK["regex"]),
    )
    request.messages.add(role="assistant", reasoning="Use the tool.").tool_calls.add(
        id="c1", name="get_time", arguments='{"timezone": "Europe/Paris"}'
    )
    request.messages.add(role="tool", tool_call_id="c1", content="09:30")
    reply = stub.Chat(request, timeout=120)
    assert "<tool_response>\n09:30\n</tool_response>" in reply.prompt.text
    message = reply.choices[0].message
    assert message.reasoning and message.content and not message.tool_calls
    assert 0 < reply.usage.reasoning_tokens < reply.usage.completion_tokens
    reasoning = content = ""
    for event in stub.ChatStream(request, timeout=120):
        if event.WhichOneof("event") == "delta":
            reasoning += event.delta.reasoning
            content += event.delta.content
    assert (reasoning, content) == (message.reasoning, message.content)


def post(servers, body: dict) -> httpx.Response:
    return httpx.post(f"{servers.http_url}/v1/chat/completions", json=body, timeout=60)


BAD_REQUESTS = [
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice", "nope"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "strng"}}}}}], "tool_choice": "required"},
     "tools", "JSON Schema"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "required": "a"}}}]}, "tools", "JSON Schema"),
    ({"add_generation_prompt": True, "continue_final_message": True},
     "continue_final_message", "add_generation_prompt"),
    ({"tool_choice": "required"}, "tool_choice", "`tools` must be set"),
    ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}},
     "structured_outputs", "cannot be combined"),
    ({"thinking_token_budget": 10}, "thinking_token_budget", "not supported"),
]  # fmt: skip


@pytest.mark.parametrize("extra,param,message", BAD_REQUESTS, ids=[b[1] for b in BAD_REQUESTS])
def test_bad_tool_requests_are_400_naming_the_field(tool_servers, extra, param, message) -> None:
    reply = post(tool_servers, {"model": "demo", "messages": ASK, "max_tokens": 4, **extra})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and message in error["message"], error
    assert (
        post(tool_servers, {"model": "demo", "messages": ASK, "max_tokens": 2}).status_code == 200
    )


def test_bad_tool_requests_through_grpc(stub) -> None:
    bad = [
        grpc_request(tool_choice=chat_pb2.ToolChoice(function_name="nope")),
        grpc_request(tool_choice=chat_pb2.ToolChoice(mode=chat_pb2.ToolChoice.MODE_REQUIRED)),
        grpc_request(
            template=chat_pb2.ChatTemplateOptions(
                add_generation_prompt=True, continue_final_message=True
            )
        ),  # fmt: skip
    ]
    bad[1].tools[0].parameters_json = '{"type": 5}'
    for request, field in zip(bad, ["tool_choice", "tools", "continue_final_message"], strict=True):
        with pytest.raises(grpc.RpcError) as error:
            stub.Chat(request, timeout=30)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in error.value.details(), error.value.details()


def test_auto_tool_choice_needs_the_server_flags(servers) -> None:
    """The main e2e server runs without --enable-auto-tool-choice."""
    reply = post(servers, {"model": "demo", "messages": ASK, "tools": TOOLS, "max_tokens": 2})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == "tool_choice" and "--enable-auto-tool-choice" in error["message"]
    forced = post(servers, {"model": "demo", "messages": ASK, "tools": TOOLS, "max_tokens": 300,
                            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
                            "seed": 4, "temperature": 1.0})  # fmt: skip
    assert forced.status_code == 200, forced.text
    [call] = forced.json()["choices"][0]["message"]["tool_calls"]
    jsonschema.validate(json.loads(call["function"]["arguments"]), TIME)
