"""A chat choice's generated text -> reasoning, content and tool calls, as it streams
(feed / finish: each piece's new reasoning, content and tool-call fragments) or at
once (parse). The reasoning parser sees the text first; what it calls content goes to
the tool parser. Chat (unary and streamed) and any other API built on the chat pipeline
(Responses) read model outputs through this one object.

    parser = ChatOutputParser.create(plan, reasoning_parser, prompt_text)
    for piece, tokens in pieces:
        delta = parser.feed(piece, tokens)   # OutputDelta(reasoning, content, tool_calls)
    delta = parser.finish()
    parser.result()                          # ChatOutput(content, reasoning, tool_calls, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.config import ChatOptions
from service.reasoning import ReasoningParser, ReasoningStream, reasoning_parser_class
from service.tool_choice import ToolPlan
from service.tool_parsers import (
    ToolCall,
    ToolCallDelta,
    ToolCallStream,
    load_plugin,
    tool_parser_class,
)


@dataclass(frozen=True)
class OutputDelta:
    reasoning: str = ""
    content: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()


@dataclass(frozen=True)
class ChatOutput:
    # None: no content (only reasoning, or only tool calls).
    content: str | None
    # None without a reasoning parser, or when the model did not reason.
    reasoning: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    # Tokens generated inside the think block (the closing tag's included).
    reasoning_tokens: int = 0


class ChatOutputParser:
    def __init__(
        self,
        reasoning: ReasoningStream | None = None,
        tools: ToolCallStream | None = None,
        prefix: str = "",
    ) -> None:
        self._reasoning = reasoning
        self._tools = tools
        self._prefix = prefix  # echo: content that precedes the output, never parsed
        self._content = ""
        self.reasoning_tokens = 0

    @classmethod
    def create(
        cls,
        plan: ToolPlan,
        reasoning_parser: type[ReasoningParser] | None,
        prompt_text: str,
        prefix: str = "",
    ) -> ChatOutputParser:
        """A forced tool choice (or any constraint from the first token) leaves no room
        for thinking first: its output is read as content unless it opens a think tag."""
        reasoning = None
        if reasoning_parser is not None:
            parser = reasoning_parser()
            thinking = parser.starts_in_reasoning(prompt_text) and not plan.forced
            reasoning = ReasoningStream(parser, thinking)
        return cls(reasoning, plan.new_stream(), prefix)

    def feed(self, text: str, num_tokens: int = 0) -> OutputDelta:
        reasoning, content = "", text
        if self._reasoning is not None:
            thinking = self._reasoning.thinking
            split = self._reasoning.feed(text)
            reasoning, content = split.reasoning, split.content
            if thinking or self._reasoning.thinking or reasoning:
                self.reasoning_tokens += num_tokens
        return self._with_prefix(self._tools_delta(reasoning, content, final=False))

    def finish(self) -> OutputDelta:
        reasoning, content = "", ""
        if self._reasoning is not None:
            split = self._reasoning.finish()
            reasoning, content = split.reasoning, split.content
        return self._with_prefix(self._tools_delta(reasoning, content, final=True))

    def parse(self, text: str, num_tokens: int = 0) -> ChatOutput:
        """All of a text at once."""
        self.feed(text, num_tokens)
        self.finish()
        return self.result()

    def result(self) -> ChatOutput:
        calls = self._tools.tool_calls if self._tools is not None else []
        content: str | None = self._content
        reasoning = None
        if self._reasoning is not None and self._reasoning.reasoned:
            reasoning = self._reasoning.reasoning
        if not content and (calls or reasoning is not None):
            content = None
        return ChatOutput(content, reasoning, calls, self.reasoning_tokens)

    def _tools_delta(self, reasoning: str, content: str, final: bool) -> OutputDelta:
        if self._tools is None:
            self._content += content
            return OutputDelta(reasoning, content)
        parsed = self._tools.feed(content) if not final else self._finish_tools(content)
        self._content += parsed.content
        return OutputDelta(reasoning, parsed.content, parsed.tool_calls)

    def _finish_tools(self, content: str):
        first = self._tools.feed(content)
        last = self._tools.finish()
        return type(last)(first.content + last.content, first.tool_calls + last.tool_calls)

    def _with_prefix(self, delta: OutputDelta) -> OutputDelta:
        if not self._prefix:
            return delta
        prefix, self._prefix = self._prefix, ""
        self._content = prefix + self._content
        return OutputDelta(delta.reasoning, prefix + delta.content, delta.tool_calls)


def check_chat_options(options: ChatOptions) -> None:
    """Startup checks (ValueError): the plugin loads, the parsers exist, auto tool choice
    has a parser."""
    if options.tool_parser_plugin:
        load_plugin(options.tool_parser_plugin)
    if options.tool_call_parser:
        tool_parser_class(options.tool_call_parser)
    if options.enable_auto_tool_choice and not options.tool_call_parser:
        raise ValueError("--enable-auto-tool-choice requires --tool-call-parser")
    if options.reasoning_parser:
        reasoning_parser_class(options.reasoning_parser)
    if options.content_format not in ("auto", "string", "openai"):
        raise ValueError(
            f"--chat-template-content-format must be auto, string or openai, got "
            f"{options.content_format!r}"
        )
