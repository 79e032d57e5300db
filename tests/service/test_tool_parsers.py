"""Every tool parser on recorded model outputs: the unary parse gives the expected
content and calls, and the same text streamed (token by token with a real tokenizer,
and character by character) gives deltas that add up to exactly that result."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from service.detokenizer import IncrementalDetokenizer
from service.tokenizer import Tokenizer
from service.tool_parsers import (
    ToolCallStream,
    ToolParser,
    load_plugin,
    tool_parser_class,
    tool_parser_names,
)
from service.tool_parsers.forced import NamedToolParser, RequiredToolParser
from tests.data import model_outputs as recorded

CASES = [
    *(("hermes", *case) for case in recorded.HERMES),
    *(("llama3_json", *case) for case in recorded.LLAMA3_JSON),
    *(("mistral", *case) for case in recorded.MISTRAL),
    *(("pythonic", *case) for case in recorded.PYTHONIC),
]
PLUGIN = Path(__file__).parent.parent / "data" / "tool_parser_plugin.py"


@pytest.fixture(scope="module")
def tokenizer(demo_model_dir) -> Tokenizer:
    return Tokenizer(str(demo_model_dir))


def token_pieces(tokenizer: Tokenizer, text: str) -> list[str]:
    """`text` as a model streams it: one detokenised piece per token."""
    detokenizer = IncrementalDetokenizer(tokenizer, [], skip_special_tokens=False)
    pieces = [detokenizer.add([t]) for t in tokenizer.encode(text, add_special_tokens=False)]
    assert "".join(pieces) == text
    return pieces


class _Ids:
    """Deterministic call ids, so streamed and unary results compare whole."""

    def __init__(self, parser: ToolParser) -> None:
        self.parser, self.count = parser, itertools.count()

    def __call__(self) -> str:
        return f"call-{next(self.count)}"


def stream_of(parser: ToolParser) -> ToolCallStream:
    parser.new_call_id = _Ids(parser)
    return ToolCallStream(parser)


def streamed(
    parser: ToolParser, pieces: list[str]
) -> tuple[str | None, list[tuple[str, str, str]]]:
    """Reassemble the deltas as a client does: content concatenated, calls by index
    (id and name from the first fragment, arguments appended)."""
    stream = stream_of(parser)
    content, calls = "", {}
    for delta in [*(stream.feed(p) for p in pieces), stream.finish()]:
        content += delta.content
        for fragment in delta.tool_calls:
            if fragment.index not in calls:
                assert fragment.id and fragment.name, "a call's first fragment names it"
                assert fragment.index == len(calls), "calls arrive in order"
                calls[fragment.index] = [fragment.id, fragment.name, ""]
            else:
                assert not fragment.id and not fragment.name
            calls[fragment.index][2] += fragment.arguments
    return (content or None) if calls else content, [tuple(c) for c in calls.values()]


def unary(parser: ToolParser, text: str) -> tuple[str | None, list[tuple[str, str, str]]]:
    stream = stream_of(parser)
    stream.feed(text)
    stream.finish()
    return stream.content, [(c.id, c.name, c.arguments) for c in stream.tool_calls]


@pytest.mark.parametrize("name,output,content,calls", CASES, ids=lambda v: str(v)[:24])
def test_recorded_outputs_parse_and_stream_alike(tokenizer, name, output, content, calls) -> None:
    parser_class = tool_parser_class(name)
    whole = unary(parser_class(), output)
    assert whole[0] == content
    assert [(n, json.loads(a)) for _, n, a in whole[1]] == calls
    assert streamed(parser_class(), token_pieces(tokenizer, output)) == whole
    assert streamed(parser_class(), list(output)) == whole


def test_streamed_call_starts_with_id_and_name_then_argument_pieces(tokenizer) -> None:
    output = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "San Francisco"}}\n</tool_call>'
    )
    stream = stream_of(tool_parser_class("hermes")())
    deltas = [d for p in token_pieces(tokenizer, output) for d in stream.feed(p).tool_calls]
    assert (deltas[0].id, deltas[0].name) == ("call-0", "get_weather")
    assert len(deltas) > 3 and all(not d.id for d in deltas[1:])
    assert json.loads("".join(d.arguments for d in deltas)) == {"city": "San Francisco"}


def test_partial_markers_are_held_back_then_released() -> None:
    stream = stream_of(tool_parser_class("hermes")())
    assert stream.feed("Answer: <tool").content == "Answer:"
    assert stream.feed("box>").content == " <toolbox>"
    assert stream.finish().content == ""
    stream = stream_of(tool_parser_class("hermes")())
    stream.feed("Done <tool_c")
    assert stream.finish().content == " <tool_c"  # the end: nothing more can come


def test_parallel_tool_calls_false_keeps_the_first_call() -> None:
    output = recorded.HERMES[1][0]
    stream = ToolCallStream(tool_parser_class("hermes")(), max_calls=1)
    stream.feed(output)
    stream.finish()
    assert [c.name for c in stream.tool_calls] == ["get_weather"]


def test_cut_off_call_keeps_its_partial_arguments() -> None:
    """finish_reason length: the call is returned with what was generated."""
    _, calls = unary(
        tool_parser_class("hermes")(), '<tool_call>\n{"name": "f", "arguments": {"a": [1, 2'
    )
    assert calls == [("call-0", "f", '{"a": [1, 2')]


def test_mistral_ids_are_nine_alphanumerics() -> None:
    call_id = tool_parser_class("mistral")().new_call_id()
    assert len(call_id) == 9 and call_id.isalnum()
    assert tool_parser_class("hermes")().new_call_id().startswith("chatcmpl-tool-")


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_forced_outputs(size) -> None:
    required = '[{"name": "get_weather", "parameters": {"city": "Rome"}}, {"name": "ping"}]'
    pieces = [required[i : i + size] for i in range(0, len(required), size)]
    whole = unary(RequiredToolParser(), required)
    assert whole == (
        None,
        [("call-0", "get_weather", '{"city": "Rome"}'), ("call-1", "ping", "{}")],
    )
    assert streamed(RequiredToolParser(), pieces) == whole
    named = ' {"city": "Rome"}'
    whole = unary(NamedToolParser("get_weather"), named)
    assert whole == (None, [("call-0", "get_weather", '{"city": "Rome"}')])
    pieces = [named[i : i + size] for i in range(0, len(named), size)]
    assert streamed(NamedToolParser("get_weather"), pieces) == whole


def test_unknown_parser_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="hermes, llama3_json, mistral, pythonic"):
        tool_parser_class("nope")


def test_plugin_registers_a_parser() -> None:
    load_plugin(str(PLUGIN))
    assert "xml_calls" in tool_parser_names()
    whole = unary(tool_parser_class("xml_calls")(), 'Sure.<call name="f">{"x": 1}</call>')
    assert whole == ("Sure.", [("call-0", "f", '{"x": 1}')])
    with pytest.raises(ValueError, match="no such file"):
        load_plugin("/nonexistent/plugin.py")
