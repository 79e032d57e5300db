"""Hermes 2 Pro / 3, Qwen2.5, Qwen3: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`,
one block per call, text around them is content."""

from __future__ import annotations

from service.tool_parsers.base import (
    Parse,
    PartialCall,
    ToolParser,
    content_before,
    held_marker,
    json_call,
    skip_ws,
)

OPEN, CLOSE = "<tool_call>", "</tool_call>"


class HermesToolParser(ToolParser):
    name = "hermes"
    # Hermes 2 Pro's <tool_call> is a special token (Qwen's are plain added tokens).
    keeps_special_tokens = True

    def parse(self, text: str, final: bool) -> Parse:
        content: list[str] = []
        calls: list[PartialCall] = []
        position = 0
        while True:
            start = text.find(OPEN, position)
            if start < 0:
                content.append(content_before(text[position:], len(text) - position, OPEN, final))
                break
            content.append(text[position:start])
            position = self._block(text, start + len(OPEN), final, content, calls)
            if position is None:  # the block is still arriving
                break
        return Parse("".join(content), tuple(calls))

    def _block(
        self, text: str, body: int, final: bool, content: list[str], calls: list[PartialCall]
    ) -> int | None:
        """Read one block; the position after it, or None when it is still open."""
        begin = skip_ws(text, body)
        if begin >= len(text):
            if final:
                content.append(text[body - len(OPEN) :])
            return None
        found = json_call(text, begin) if text[begin] == "{" else None
        if found is not None and found.call is not None:
            calls.append(found.call)
            if not found.scan.closed:
                return None
            return self._after_call(text, found.scan.stop, final)
        if found is not None and not (found.scan.closed or found.scan.broken) and not final:
            return None  # no name yet: it may still become a call
        # Not a call: the block is text.
        close = text.find(CLOSE, body)
        end = len(text) if close < 0 else close + len(CLOSE)
        content.append(text[body - len(OPEN) : end])
        return end if close >= 0 else None

    def _after_call(self, text: str, stop: int, final: bool) -> int | None:
        """Past the closing tag (or, without one, where the call's JSON ends)."""
        i = skip_ws(text, stop)
        if text.startswith(CLOSE, i):
            return i + len(CLOSE)
        rest = text[i:]
        if not final and (not rest or held_marker(rest, CLOSE) == len(rest)):
            return None
        return stop
