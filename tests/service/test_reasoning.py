"""Reasoning parsers on recorded outputs (whole, token by token, character by
character), and the chat output parser that chains reasoning and tool parsing."""

from __future__ import annotations

import json

import pytest

from protoserve.common.v1 import chat_pb2
from service.chat_output import ChatOutputParser
from service.config import ChatOptions
from service.detokenizer import IncrementalDetokenizer
from service.reasoning import ReasoningStream, reasoning_parser_class
from service.tokenizer import Tokenizer
from service.tool_choice import plan_tools
from tests.data import model_outputs as recorded

OPEN_PROMPT = "<|im_start|>assistant\n<think>\n"
CLOSED_PROMPT = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def tokenizer(demo_model_dir) -> Tokenizer:
    return Tokenizer(str(demo_model_dir))


def token_pieces(tokenizer: Tokenizer, text: str) -> list[str]:
    detokenizer = IncrementalDetokenizer(tokenizer, [], skip_special_tokens=False)
    return [detokenizer.add([t]) for t in tokenizer.encode(text, add_special_tokens=False)]


def run(name: str, in_reasoning: bool, pieces: list[str]) -> tuple[str | None, str | None]:
    stream = ReasoningStream(reasoning_parser_class(name)(), in_reasoning)
    reasoning = content = ""
    for delta in [*(stream.feed(p) for p in pieces), stream.finish()]:
        assert not (content and delta.reasoning), "reasoning comes before content"
        reasoning += delta.reasoning
        content += delta.content
    assert (reasoning, content) == (stream.reasoning, stream.content)
    return (reasoning if stream.reasoned else None), (content or None)


@pytest.mark.parametrize("name,output,opened,reasoning,content", recorded.REASONING)
def test_recorded_outputs_split_alike_whole_and_streamed(
    tokenizer, name, output, opened, reasoning, content
) -> None:
    prompt = OPEN_PROMPT if opened else CLOSED_PROMPT
    in_reasoning = reasoning_parser_class(name)().starts_in_reasoning(prompt)
    assert run(name, in_reasoning, [output]) == (reasoning, content)
    assert run(name, in_reasoning, token_pieces(tokenizer, output)) == (reasoning, content)
    assert run(name, in_reasoning, list(output)) == (reasoning, content)


def test_qwen3_starts_in_reasoning_only_inside_an_open_block() -> None:
    qwen3 = reasoning_parser_class("qwen3")()
    assert qwen3.starts_in_reasoning(OPEN_PROMPT)
    assert not qwen3.starts_in_reasoning(CLOSED_PROMPT)
    assert not qwen3.starts_in_reasoning("<|im_start|>assistant\n")
    assert reasoning_parser_class("deepseek_r1")().starts_in_reasoning("")
    with pytest.raises(ValueError, match="deepseek_r1, qwen3"):
        reasoning_parser_class("nope")


def plan(choice=None, tools=True):
    tool = chat_pb2.Tool(
        name="get_weather",
        parameters_json=json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}),
    )
    options = ChatOptions(enable_auto_tool_choice=True, tool_call_parser="hermes")
    return plan_tools([tool] if tools else [], choice, True, options)


THINK_THEN_CALL = (
    "<think>\nI need the weather in Paris.\n</think>\n\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
)


def test_reasoning_then_tool_call_streamed_and_whole(tokenizer) -> None:
    qwen3 = reasoning_parser_class("qwen3")
    pieces = token_pieces(tokenizer, THINK_THEN_CALL)
    parser = ChatOutputParser.create(plan(), qwen3, "<|im_start|>assistant\n")
    reasoning, content, arguments, names = "", "", "", []
    for delta in [*(parser.feed(p, 1) for p in pieces), parser.finish()]:
        reasoning += delta.reasoning
        content += delta.content
        names += [c.name for c in delta.tool_calls if c.name]
        arguments += "".join(c.arguments for c in delta.tool_calls)
    result = parser.result()
    whole = ChatOutputParser.create(plan(), qwen3, "<|im_start|>assistant\n").parse(THINK_THEN_CALL)
    assert result.reasoning == reasoning == whole.reasoning == "\nI need the weather in Paris.\n"
    assert result.content is None and content == "" and whole.content is None
    assert names == ["get_weather"] and json.loads(arguments) == {"city": "Paris"}
    assert [c.arguments for c in result.tool_calls] == [c.arguments for c in whole.tool_calls]
    thinking_tokens = len(
        token_pieces(tokenizer, "<think>\nI need the weather in Paris.\n</think>")
    )
    assert thinking_tokens <= result.reasoning_tokens <= thinking_tokens + 1
    assert result.reasoning_tokens < len(pieces)


def test_forced_choice_output_is_not_reasoning() -> None:
    """deepseek_r1 treats an unclosed output as reasoning, but a forced choice's output
    is constrained JSON from its first token."""
    deepseek = reasoning_parser_class("deepseek_r1")
    named = plan(chat_pb2.ToolChoice(function_name="get_weather"))
    result = ChatOutputParser.create(named, deepseek, OPEN_PROMPT).parse('{"city": "Oslo"}', 5)
    assert result.reasoning is None and result.reasoning_tokens == 0
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("get_weather", '{"city": "Oslo"}')
    ]


def test_echo_prefix_is_content_never_parsed() -> None:
    deepseek = reasoning_parser_class("deepseek_r1")
    parser = ChatOutputParser.create(plan(tools=False), deepseek, OPEN_PROMPT, prefix="Once ")
    first = parser.feed("upon</think>", 2)
    assert (first.content, first.reasoning) == ("Once ", "upon")
    parser.feed(" a time", 2)
    parser.finish()
    result = parser.result()
    assert (result.content, result.reasoning, result.reasoning_tokens) == (
        "Once  a time",
        "upon",
        2,
    )
