"""What a chat request's tools and tool_choice mean for one request: which parser reads
the output (auto: the server's --tool-call-parser), or which structured-output
constraint forces it (required: a JSON list of calls, named: that function's arguments,
as vLLM builds them), and the 400s: tool_choice without tools, an unknown function,
a schema that is not JSON Schema, auto without --enable-auto-tool-choice."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

from engine.structured import StructuredOutputSpec
from protoserve.common.v1 import chat_pb2
from service.config import ChatOptions
from service.errors import InvalidArgument
from service.tool_parsers import ToolCallStream, ToolParser, tool_parser_class
from service.tool_parsers.forced import NamedToolParser, RequiredToolParser

# JSON written under a forced choice: one optional space between tokens (the way models
# write JSON), so a model fond of whitespace cannot spend its budget on it.
FORCED_WHITESPACE = "[ ]?"
AUTO_NEEDS_FLAGS = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)


class ToolMode(enum.Enum):
    NONE = "none"
    AUTO = "auto"
    REQUIRED = "required"
    NAMED = "named"


@dataclass(frozen=True)
class ToolPlan:
    mode: ToolMode
    # The tools the template sees (tool_choice none may hide them).
    rendered: tuple[chat_pb2.Tool, ...] = ()
    parser: type[ToolParser] | None = None  # AUTO
    function: str = ""  # NAMED
    parallel: bool = True
    constraint: StructuredOutputSpec | None = None  # REQUIRED, NAMED

    @property
    def parses(self) -> bool:
        return self.mode is not ToolMode.NONE

    @property
    def forced(self) -> bool:
        return self.constraint is not None

    @property
    def keeps_special_tokens(self) -> bool:
        return self.parser is not None and self.parser.keeps_special_tokens

    def new_stream(self) -> ToolCallStream | None:
        """A fresh parse of one choice's text (None: the text is plain content)."""
        if self.mode is ToolMode.NONE:
            return None
        if self.mode is ToolMode.NAMED:
            parser: ToolParser = NamedToolParser(self.function)
        elif self.mode is ToolMode.REQUIRED:
            parser = RequiredToolParser()
        else:
            parser = self.parser()
        return ToolCallStream(parser, max_calls=None if self.parallel else 1)

    def finish_as_tool_calls(self) -> bool:
        """finish_reason "tool_calls" for a choice with calls that stopped naturally
        (a named choice finishes "stop", as OpenAI)."""
        return self.mode in (ToolMode.AUTO, ToolMode.REQUIRED)


def plan_tools(
    tools: list[chat_pb2.Tool],
    choice: chat_pb2.ToolChoice | None,
    parallel: bool,
    options: ChatOptions,
    has_structured_output: bool = False,
) -> ToolPlan:
    """Check tools and tool_choice; None `choice`: unset (auto with tools, else none)."""
    schemas = [_parameters(t, i) for i, t in enumerate(tools)]
    mode, function = _mode(tools, choice)
    if mode is ToolMode.NONE:
        hidden = options.exclude_tools_when_tool_choice_none
        return ToolPlan(mode, () if hidden else tuple(tools))
    if mode is ToolMode.AUTO:
        if not (options.enable_auto_tool_choice and options.tool_call_parser):
            raise InvalidArgument(AUTO_NEEDS_FLAGS, "tool_choice")
        parser = tool_parser_class(options.tool_call_parser)
        return ToolPlan(mode, tuple(tools), parser=parser, parallel=parallel)
    if has_structured_output:
        raise InvalidArgument(
            f"structured outputs cannot be combined with tool_choice {mode.value!r}, which "
            "already constrains the output.",
            "structured_outputs",
        )
    if mode is ToolMode.NAMED:
        schema = schemas[[t.name for t in tools].index(function)] or {"type": "object"}
    else:
        schema = required_schema(tools, schemas, parallel)
    spec = StructuredOutputSpec(
        kind="json", value=json.dumps(schema), whitespace_pattern=FORCED_WHITESPACE
    )
    return ToolPlan(mode, tuple(tools), function=function, parallel=parallel, constraint=spec)


def _mode(tools: list[chat_pb2.Tool], choice: chat_pb2.ToolChoice | None) -> tuple[ToolMode, str]:
    if choice is None or choice.WhichOneof("choice") is None:
        return (ToolMode.AUTO if tools else ToolMode.NONE), ""
    if choice.WhichOneof("choice") == "function_name":
        if not tools:
            raise InvalidArgument("When using `tool_choice`, `tools` must be set.", "tool_choice")
        name = choice.function_name
        if name not in {t.name for t in tools}:
            raise InvalidArgument(
                f"tool_choice.function.name `{name}` does not match any of the specified "
                f"`tools` ({', '.join(t.name for t in tools)}).",
                "tool_choice",
            )
        return ToolMode.NAMED, name
    modes = {
        chat_pb2.ToolChoice.MODE_UNSPECIFIED: ToolMode.AUTO if tools else ToolMode.NONE,
        chat_pb2.ToolChoice.MODE_NONE: ToolMode.NONE,
        chat_pb2.ToolChoice.MODE_AUTO: ToolMode.AUTO,
        chat_pb2.ToolChoice.MODE_REQUIRED: ToolMode.REQUIRED,
    }
    mode = modes[choice.mode]
    if mode is not ToolMode.NONE and not tools:
        raise InvalidArgument("When using `tool_choice`, `tools` must be set.", "tool_choice")
    return mode, ""


def _parameters(tool: chat_pb2.Tool, index: int) -> dict[str, Any] | None:
    """The tool's parameters schema, checked against the JSON Schema meta-schema."""
    if not tool.name:
        raise InvalidArgument(f"tools[{index}].function.name must not be empty.", "tools")
    if not tool.HasField("parameters_json"):
        return None
    try:
        schema = json.loads(tool.parameters_json)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"tools[{index}].function.parameters of `{tool.name}` is not valid JSON: {exc}",
            "tools",
        ) from exc
    if not isinstance(schema, dict):
        raise InvalidArgument(
            f"tools[{index}].function.parameters of `{tool.name}` must be a JSON Schema object.",
            "tools",
        )
    try:
        validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise InvalidArgument(
            f"tools[{index}].function.parameters of `{tool.name}` is not a valid JSON "
            f"Schema: {exc.message} (at {where}).",
            "tools",
        ) from exc
    return schema


def required_schema(
    tools: list[chat_pb2.Tool], schemas: list[dict[str, Any] | None], parallel: bool
) -> dict[str, Any]:
    """A non-empty list of {"name": <one of the tools>, "parameters": <its schema>}
    (vLLM's shape; `$defs` of the tools hoisted to the top)."""
    items, defs = [], {}
    for tool, schema in zip(tools, schemas, strict=True):
        properties: dict[str, Any] = {"name": {"type": "string", "enum": [tool.name]}}
        if schema is not None:
            schema = dict(schema)
            for name, definition in schema.pop("$defs", {}).items():
                if defs.setdefault(name, definition) != definition:
                    raise InvalidArgument(
                        f"tools: the definition `{name}` has several schemas.", "tools"
                    )
            properties["parameters"] = schema
        items.append(
            {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            }
        )
    out: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": items}}
    if not parallel:
        out["maxItems"] = 1
    if defs:
        out["$defs"] = defs
    return out
