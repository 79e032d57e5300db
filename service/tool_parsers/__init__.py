"""Tool-call parsers by name (--tool-call-parser), and the hook that adds more
(--tool-parser-plugin FILE: a Python file that defines ToolParser subclasses and
registers them with @register_tool_parser("name"))."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from service.tool_parsers.base import Parse, PartialCall, ToolParser
from service.tool_parsers.hermes import HermesToolParser
from service.tool_parsers.llama3_json import Llama3JsonToolParser
from service.tool_parsers.mistral import MistralToolParser
from service.tool_parsers.pythonic import PythonicToolParser
from service.tool_parsers.stream import ToolCall, ToolCallDelta, ToolCallStream, ToolsDelta

_PARSERS: dict[str, type[ToolParser]] = {
    "hermes": HermesToolParser,
    "qwen3_json": HermesToolParser,
    "llama3_json": Llama3JsonToolParser,
    "mistral": MistralToolParser,
    "pythonic": PythonicToolParser,
}


def register_tool_parser(name: str) -> Callable[[type[ToolParser]], type[ToolParser]]:
    """Class decorator: serve `cls` as --tool-call-parser NAME."""

    def register(cls: type[ToolParser]) -> type[ToolParser]:
        if not (isinstance(cls, type) and issubclass(cls, ToolParser)):
            raise TypeError(f"{cls!r} is not a ToolParser subclass")
        _PARSERS[name] = cls
        return cls

    return register


def tool_parser_names() -> list[str]:
    return sorted(_PARSERS)


def tool_parser_class(name: str) -> type[ToolParser]:
    """The parser registered as `name`; ValueError naming the known ones."""
    try:
        return _PARSERS[name]
    except KeyError:
        raise ValueError(
            f"unknown tool call parser {name!r}; known: {', '.join(tool_parser_names())}"
        ) from None


def load_plugin(path: str) -> None:
    """Run a plugin file (its @register_tool_parser calls register its parsers)."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--tool-parser-plugin {path}: no such file")
    module_name = f"protoserve_tool_parser_plugin_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)


__all__ = [
    "Parse",
    "PartialCall",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallStream",
    "ToolParser",
    "ToolsDelta",
    "load_plugin",
    "register_tool_parser",
    "tool_parser_class",
    "tool_parser_names",
]
