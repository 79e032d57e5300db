"""Llama 3.1-3.3 JSON calls: `{"name": ..., "parameters": {...}}` as the whole answer,
optionally after `<|python_tag|>`, several separated by `;`."""

from __future__ import annotations

from service.tool_parsers.base import Parse, PartialCall, ToolParser, json_call, skip_ws

PYTHON_TAG = "<|python_tag|>"


class Llama3JsonToolParser(ToolParser):
    name = "llama3_json"

    def parse(self, text: str, final: bool) -> Parse:
        i = skip_ws(text, 0)
        if text.startswith(PYTHON_TAG, i):
            i = skip_ws(text, i + len(PYTHON_TAG))
        elif not final and text[i:] and PYTHON_TAG.startswith(text[i:]):
            return Parse("")
        if i >= len(text):
            return Parse("" if not final else text)
        if text[i] != "{":
            return Parse(text)
        calls: list[PartialCall] = []
        while True:
            found = json_call(text, i)
            if found.call is None:
                if not (found.scan.closed or found.scan.broken) and not final:
                    return Parse("", tuple(calls))  # the name may still come
                return Parse(text[i:] if calls else text, tuple(calls))
            calls.append(found.call)
            if not found.scan.closed:
                return Parse("", tuple(calls))
            i = skip_ws(text, found.scan.stop)
            if i < len(text) and text[i] == ";":
                i = skip_ws(text, i + 1)
                if i < len(text) and text[i] == "{":
                    continue
            return Parse(text[i:], tuple(calls))
