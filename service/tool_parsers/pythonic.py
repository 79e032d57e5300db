"""Pythonic calls (Llama 3.2 small models, Llama 4, ToolACE): the answer is a Python
list of calls, `[get_weather(city="Paris", unit="celsius"), get_time()]`, optionally in
`<|python_start|>…<|python_end|>`. Arguments are keyword literals; each becomes JSON
once its value is complete, so the streamed arguments are the final JSON's prefix."""

from __future__ import annotations

import ast
import json
import re

from service.tool_parsers.base import Parse, PartialCall, ToolParser, skip_ws

START, END = "<|python_start|>", "<|python_end|>"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPENERS = {"(": ")", "[": "]", "{": "}"}


class PythonicToolParser(ToolParser):
    name = "pythonic"

    def parse(self, text: str, final: bool) -> Parse:
        i = skip_ws(text, 0)
        if text.startswith(START, i):
            i = skip_ws(text, i + len(START))
        elif not final and text[i:] and START.startswith(text[i:]):
            return Parse("")
        if i >= len(text):
            return Parse("" if not final else text)
        if text[i] != "[":
            return Parse(text)
        return self._calls(text, skip_ws(text, i + 1), final)

    def _calls(self, text: str, i: int, final: bool) -> Parse:
        calls: list[PartialCall] = []
        while True:
            match = _NAME.match(text, i)
            if match is None or match.end() == len(text):
                pending = i >= len(text) or match is not None
                if pending and not final:
                    return Parse("", tuple(calls))
                return Parse(text[i:] if calls else text, tuple(calls))
            j = skip_ws(text, match.end())
            if j < len(text) and text[j] != "(":
                return Parse(text[i:] if calls else text, tuple(calls))
            if j >= len(text):
                return Parse("" if not final or calls else text, tuple(calls))
            arguments, stop, closed = _arguments(text, j + 1)
            calls.append(PartialCall(match.group(), arguments))
            if not closed:
                return Parse("", tuple(calls))
            k = skip_ws(text, stop)
            if k < len(text) and text[k] == ",":
                i = skip_ws(text, k + 1)
                continue
            if k < len(text) and text[k] == "]":
                rest = text[k + 1 :]
                if rest.startswith(END):
                    rest = rest[len(END) :]
                elif not final and END.startswith(rest):
                    rest = ""  # the closing tag may be arriving
                return Parse(rest, tuple(calls))
            return Parse("" if k >= len(text) else text[k:], tuple(calls))


def _arguments(text: str, i: int) -> tuple[str, int, bool]:
    """(JSON of the complete keyword arguments so far, position after them, closed)."""
    pieces: list[str] = []
    while True:
        i = skip_ws(text, i)
        if i >= len(text):
            return _as_json(pieces, False), i, False
        if text[i] == ")":
            return _as_json(pieces, True), i + 1, True
        match = _NAME.match(text, i)
        j = skip_ws(text, match.end()) if match else i
        if match is None or j >= len(text) or text[j] != "=":
            return _as_json(pieces, False), i, False
        start = skip_ws(text, j + 1)
        stop = _value_end(text, start)
        if stop is None:
            return _as_json(pieces, False), len(text), False
        try:
            value = json.dumps(ast.literal_eval(text[start:stop].strip()), ensure_ascii=False)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return _as_json(pieces, False), stop, False
        pieces.append(f"{json.dumps(match.group())}: {value}")
        i = stop + 1 if text[stop] == "," else stop


def _as_json(pieces: list[str], closed: bool) -> str:
    if not pieces:
        return "{}" if closed else ""
    return "{" + ", ".join(pieces) + ("}" if closed else "")


def _value_end(text: str, i: int) -> int | None:
    """Index of the `,` or `)` that ends the literal starting at text[i]; None if the
    text ends first."""
    stack: list[str] = []
    j = i
    while j < len(text):
        char = text[j]
        if char in "'\"":
            j = _string_end(text, j)
            if j is None:
                return None
            continue
        if char in _OPENERS:
            stack.append(_OPENERS[char])
        elif stack and char == stack[-1]:
            stack.pop()
        elif not stack and char in ",)":
            return j
        j += 1
    return None


def _string_end(text: str, i: int) -> int | None:
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text[j] == quote:
            return j + 1
        else:
            j += 1
    return None
