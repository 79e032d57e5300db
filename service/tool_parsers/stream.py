"""Tool calls out of text that arrives piece by piece: each piece's new content and
tool-call fragments, as OpenAI streams them (a call's id and name first, then pieces
of its arguments), and at the end the whole result — which, the parse being monotone
(service/tool_parsers/base.py), is exactly what the pieces add up to."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from service.tool_parsers.base import Parse, ToolParser

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ToolCallDelta:
    """A call's first fragment has its id and name; later ones only arguments."""

    index: int
    arguments: str
    id: str = ""
    name: str = ""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class _Emitted:
    id: str
    name: str
    arguments: str = ""


@dataclass(frozen=True)
class ToolsDelta:
    content: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()


@dataclass
class ToolCallStream:
    """One choice's text through `parser`. `max_calls`: 1 with parallel_tool_calls=false
    (later calls are dropped). Whitespace at the end of the content waits for what
    follows it (text, or a call, which makes it go)."""

    parser: ToolParser
    max_calls: int | None = None
    _text: str = ""
    _content: str = ""
    _calls: list[_Emitted] = field(default_factory=list)

    def feed(self, text: str) -> ToolsDelta:
        self._text += text
        return self._advance(self.parser.parse(self._text, final=False), final=False)

    def finish(self) -> ToolsDelta:
        return self._advance(self.parser.parse(self._text, final=True), final=True)

    @property
    def content(self) -> str | None:
        """The content so far; None when it is empty and there are calls."""
        return None if not self._content and self._calls else self._content

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [ToolCall(c.id, c.name, c.arguments) for c in self._calls]

    def _advance(self, parse: Parse, final: bool) -> ToolsDelta:
        calls = parse.calls[: self.max_calls] if self.max_calls is not None else parse.calls
        visible = parse.content if final and not calls else parse.content.rstrip()
        content = ""
        if visible.startswith(self._content):
            content = visible[len(self._content) :]
            self._content = visible
        else:
            log.warning("tool parser content shrank", parser=self.parser.name)
        deltas = [d for i, call in enumerate(calls) if (d := self._call_delta(i, call))]
        return ToolsDelta(content, tuple(deltas))

    def _call_delta(self, index: int, call) -> ToolCallDelta | None:
        if index == len(self._calls):
            self._calls.append(_Emitted(self.parser.new_call_id(), call.name))
            emitted = self._calls[index]
            emitted.arguments = call.arguments
            return ToolCallDelta(index, call.arguments, emitted.id, emitted.name)
        emitted = self._calls[index]
        if not call.arguments.startswith(emitted.arguments):
            log.warning("tool parser arguments shrank", parser=self.parser.name, index=index)
            return None
        new = call.arguments[len(emitted.arguments) :]
        emitted.arguments = call.arguments
        return ToolCallDelta(index, new) if new else None
