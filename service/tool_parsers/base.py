"""What a tool parser is: a function from the model's text (so far, or all of it) to its
content and its tool calls, with one rule that makes streaming exact: on a longer text
the content, the list of calls and every call's arguments only grow. Streaming
(service/tool_parsers/stream.py) emits the differences; a unary response is the same
parse of the whole text."""

from __future__ import annotations

import abc
import uuid
from dataclasses import dataclass
from typing import ClassVar

from service.tool_parsers.json_scan import Scan, Value, scan_object, skip_ws, string_value


@dataclass(frozen=True)
class PartialCall:
    """A call whose name is known; `arguments` is its JSON text so far."""

    name: str
    arguments: str


@dataclass(frozen=True)
class Parse:
    content: str
    calls: tuple[PartialCall, ...] = ()


class ToolParser(abc.ABC):
    """Subclass, set `name`, implement `parse`, and register it
    (service.tool_parsers.register_tool_parser) — from a --tool-parser-plugin file, say."""

    name: ClassVar[str] = ""
    # The format's markers are special tokens (e.g. Mistral's [TOOL_CALLS]): detokenise
    # with skip_special_tokens=False while this parser runs.
    keeps_special_tokens: ClassVar[bool] = False

    @abc.abstractmethod
    def parse(self, text: str, final: bool) -> Parse:
        """Content and calls of `text`. With final=False, hold back what may still turn
        out to be a call (a partial marker, a call whose name is not complete)."""

    def new_call_id(self) -> str:
        return f"chatcmpl-tool-{uuid.uuid4().hex}"


def held_marker(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is the start of `marker`."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0


def content_before(text: str, end: int, marker: str, final: bool) -> str:
    """text[:end] as content, holding back a partial `marker` at its end."""
    piece = text[:end]
    return piece if final else piece[: len(piece) - held_marker(piece, marker)]


@dataclass(frozen=True)
class JsonCall:
    """A call read from one JSON object: `call` once its name is complete; `scan` says
    whether (and where) the object ended."""

    call: PartialCall | None
    scan: Scan


ARGUMENT_KEYS = ("arguments", "parameters")


def json_call(text: str, start: int, keys: tuple[str, ...] = ARGUMENT_KEYS) -> JsonCall:
    """The call in the object at text[start] ({"name": ..., "arguments": {...}}; the first
    of `keys` to appear holds the arguments, as the model wrote them)."""
    scan = scan_object(text, start)
    name = scan.members.get("name")
    decoded = string_value(name.raw(text), name.closed) if name is not None else None
    if name is None or not name.closed or decoded is None:
        return JsonCall(None, scan)
    arguments = _first(scan, keys)
    if arguments is None:
        return JsonCall(PartialCall(decoded, "{}" if scan.closed else ""), scan)
    return JsonCall(PartialCall(decoded, argument_text(text, arguments)), scan)


def _first(scan: Scan, keys: tuple[str, ...]) -> Value | None:
    for key in scan.members:  # in the order the model wrote them
        if key in keys:
            return scan.members[key]
    return None


def argument_text(text: str, value: Value) -> str:
    """The arguments' JSON text: the value as written, or the JSON a string value holds
    (`"arguments": "{\\"a\\": 1}"`)."""
    raw = value.raw(text)
    if raw.startswith('"'):
        return string_value(raw, value.closed) or ""
    return raw


__all__ = [
    "JsonCall",
    "Parse",
    "PartialCall",
    "ToolParser",
    "content_before",
    "held_marker",
    "json_call",
    "skip_ws",
]
