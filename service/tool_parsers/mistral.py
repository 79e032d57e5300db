"""Mistral: content, then `[TOOL_CALLS]` (a special token) and either a JSON list of
calls (v0.3: `[{"name": ..., "arguments": {...}}, ...]`) or, with the v11+ tokenizers,
`name[ARGS]{...}` per call (each after its own `[TOOL_CALLS]`). Call ids are nine
alphanumeric characters, as Mistral's chat templates require."""

from __future__ import annotations

import random
import re
import string

from service.tool_parsers.base import (
    Parse,
    PartialCall,
    ToolParser,
    content_before,
    json_call,
    skip_ws,
)
from service.tool_parsers.json_scan import scan_array, skip_value

MARKER, ARGS, CALL_ID = "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_ID_ALPHABET = string.ascii_letters + string.digits


class MistralToolParser(ToolParser):
    name = "mistral"
    keeps_special_tokens = True

    def parse(self, text: str, final: bool) -> Parse:
        start = text.find(MARKER)
        if start < 0:
            return Parse(content_before(text, len(text), MARKER, final))
        calls: list[PartialCall] = []
        i = start
        while text.startswith(MARKER, i):
            i = skip_ws(text, i + len(MARKER))
            if i >= len(text):
                break
            reader = self._list if text[i] in "[{" else self._named
            i = reader(text, i, final, calls)
            if i is None:
                break
            i = skip_ws(text, i)
        if not calls and final:  # a marker and no call: the text was an answer after all
            return Parse(text)
        return Parse(text[:start], tuple(calls))

    def _list(self, text: str, i: int, final: bool, calls: list[PartialCall]) -> int | None:
        """`[{...}, {...}]` (or one bare object); the position after it, None if open."""
        if text[i] == "{":
            found = json_call(text, i)
            if found.call is None:
                return None
            calls.append(found.call)
            return found.scan.stop if found.scan.closed else None
        scan = scan_array(text, i)
        for value in scan.members.values():
            found = json_call(text, value.start) if text[value.start] == "{" else None
            if found is None or found.call is None:
                return None
            calls.append(found.call)
            if not found.scan.closed:
                return None
        return scan.end

    def _named(self, text: str, i: int, final: bool, calls: list[PartialCall]) -> int | None:
        """`name[ARGS]{...}` (or `name[CALL_ID]id[ARGS]{...}`)."""
        match = _NAME.match(text, i)
        if match is None or match.end() == len(text):
            return None
        j = match.end()
        if text.startswith(CALL_ID, j):
            j = text.find(ARGS, j)
            if j < 0:
                return None
        if not text.startswith(ARGS, j):
            return None
        begin = skip_ws(text, j + len(ARGS))
        if begin >= len(text):
            calls.append(PartialCall(match.group(), ""))
            return None
        stop, closed, _ = skip_value(text, begin)
        calls.append(PartialCall(match.group(), text[begin:stop]))
        return stop if closed else None

    def new_call_id(self) -> str:
        return "".join(random.choices(_ID_ALPHABET, k=9))
