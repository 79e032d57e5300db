"""A --tool-parser-plugin file: `<call name="f">{json}</call>` blocks."""

from __future__ import annotations

import re

from service.tool_parsers import Parse, PartialCall, ToolParser, register_tool_parser

_CALL = re.compile(r'<call name="([^"]+)">(.*?)(</call>|$)', re.DOTALL)


@register_tool_parser("xml_calls")
class XmlCallsToolParser(ToolParser):
    name = "xml_calls"

    def parse(self, text: str, final: bool) -> Parse:
        start = text.find("<call ")
        if start < 0:
            return Parse(text if final else text.rstrip("<"))
        calls = [PartialCall(m.group(1), m.group(2)) for m in _CALL.finditer(text, start)]
        return Parse(text[:start], tuple(calls))
