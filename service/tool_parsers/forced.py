"""Outputs of a forced tool choice, which structured outputs shape (service/tool_choice.py
builds the schemas): `required` writes a JSON list of {"name", "parameters"} objects, a
named choice writes the function's arguments alone."""

from __future__ import annotations

from service.tool_parsers.base import Parse, PartialCall, ToolParser, json_call, skip_ws
from service.tool_parsers.json_scan import scan_array


class RequiredToolParser(ToolParser):
    """`[{"name": "f", "parameters": {...}}, ...]`: every element is a call."""

    name = "required"

    def parse(self, text: str, final: bool) -> Parse:
        start = skip_ws(text, 0)
        if start >= len(text) or text[start] != "[":
            return Parse("" if not final else text)
        calls = []
        for value in scan_array(text, start).members.values():
            if text[value.start] != "{":
                break
            found = json_call(text, value.start, keys=("parameters", "arguments"))
            if found.call is None:
                break
            calls.append(found.call)
        return Parse("", tuple(calls))


class NamedToolParser(ToolParser):
    """The whole output is the arguments of `function`."""

    name = "named"

    def __init__(self, function: str) -> None:
        self.function = function

    def parse(self, text: str, final: bool) -> Parse:
        return Parse("", (PartialCall(self.function, text.lstrip()),))
