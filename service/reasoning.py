"""Reasoning parsers (--reasoning-parser): the thinking a model writes between
`<think>` and `</think>` separated from its answer, whole or as it streams.

deepseek_r1: DeepSeek-R1's template opens the think block in the prompt, so the output is
reasoning until `</think>` (a leading `<think>` is dropped); never closed, it is all
reasoning. qwen3: reasoning when the output opens `<think>` itself, or when the prompt
ends inside an open think block (thinking-only Qwen3 variants); with enable_thinking=false
the template closes the block in the prompt, and the output is all content."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from service.tool_parsers.base import held_marker


class ReasoningParser:
    name = ""
    start = "<think>"
    end = "</think>"

    def starts_in_reasoning(self, prompt: str) -> bool:
        """Whether the output begins inside the think block (before any tag)."""
        return False


class DeepSeekR1ReasoningParser(ReasoningParser):
    name = "deepseek_r1"

    def starts_in_reasoning(self, prompt: str) -> bool:
        return True


class Qwen3ReasoningParser(ReasoningParser):
    name = "qwen3"

    def starts_in_reasoning(self, prompt: str) -> bool:
        return prompt.rfind(self.start) > prompt.rfind(self.end)


REASONING_PARSERS: dict[str, type[ReasoningParser]] = {
    "deepseek_r1": DeepSeekR1ReasoningParser,
    "qwen3": Qwen3ReasoningParser,
}


def reasoning_parser_class(name: str) -> type[ReasoningParser]:
    try:
        return REASONING_PARSERS[name]
    except KeyError:
        known = ", ".join(sorted(REASONING_PARSERS))
        raise ValueError(f"unknown reasoning parser {name!r}; known: {known}") from None


class _State(enum.Enum):
    OPENING = "opening"  # the output may still start with the start tag
    REASONING = "reasoning"
    CONTENT = "content"


@dataclass(frozen=True)
class ReasoningDelta:
    reasoning: str = ""
    content: str = ""


class ReasoningStream:
    """One choice's text, split as it arrives; a tag cut across pieces is held back."""

    def __init__(self, parser: ReasoningParser, in_reasoning: bool) -> None:
        self.parser = parser
        self._in_reasoning = in_reasoning
        self._state = _State.OPENING
        self._buffer = ""
        self.reasoning = ""
        self.content = ""
        self.reasoned = False  # the output was (or is) in the think block

    @property
    def thinking(self) -> bool:
        """Inside the think block (the text so far is reasoning)."""
        if self._state is _State.OPENING:
            return self._in_reasoning or bool(self._buffer)
        return self._state is _State.REASONING

    def feed(self, text: str) -> ReasoningDelta:
        self._buffer += text
        before_reasoning, before_content = len(self.reasoning), len(self.content)
        self._advance()
        return ReasoningDelta(self.reasoning[before_reasoning:], self.content[before_content:])

    def finish(self) -> ReasoningDelta:
        before_reasoning, before_content = len(self.reasoning), len(self.content)
        self._advance()
        if self._state is _State.OPENING and self._buffer:
            self._enter(self._in_reasoning)
        self._emit(self._buffer)
        self._buffer = ""
        return ReasoningDelta(self.reasoning[before_reasoning:], self.content[before_content:])

    def _advance(self) -> None:
        start, end = self.parser.start, self.parser.end
        while self._buffer:
            if self._state is _State.OPENING:
                if self._buffer.startswith(start):
                    self._buffer = self._buffer[len(start) :]
                    self._enter(True)
                elif start.startswith(self._buffer):
                    return
                else:
                    self._enter(self._in_reasoning)
            elif self._state is _State.REASONING:
                found = self._buffer.find(end)
                if found >= 0:
                    self.reasoning += self._buffer[:found]
                    self._buffer = self._buffer[found + len(end) :]
                    self._state = _State.CONTENT
                    continue
                keep = held_marker(self._buffer, end)
                self.reasoning += self._buffer[: len(self._buffer) - keep]
                self._buffer = self._buffer[len(self._buffer) - keep :]
                return
            else:
                self.content += self._buffer
                self._buffer = ""

    def _enter(self, reasoning: bool) -> None:
        self._state = _State.REASONING if reasoning else _State.CONTENT
        self.reasoned = self.reasoned or reasoning

    def _emit(self, text: str) -> None:
        if self._state is _State.REASONING:
            self.reasoning += text
        else:
            self.content += text
