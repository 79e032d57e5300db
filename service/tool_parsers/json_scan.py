"""A scanner for JSON that may still be arriving: where each member of an object (or
element of an array) starts and stops, whether it is complete, and where the text
stopped being JSON. Values are never re-serialised: tool-call arguments are the model's
own text, so a streamed prefix is always a prefix of the final arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

WHITESPACE = " \t\n\r"
_LITERAL_CHARS = frozenset("-+.0123456789eEtruefalsn")
_CLOSERS = {"{": "}", "[": "]"}


@dataclass(frozen=True)
class Value:
    """text[start:stop] is the value seen so far; `closed` once it is complete."""

    start: int
    stop: int
    closed: bool

    def raw(self, text: str) -> str:
        return text[self.start : self.stop]


@dataclass
class Scan:
    """An object's members (or an array's elements, keyed by position) in order.
    `end`: index after the closing bracket once complete. `broken`: the text stopped
    being JSON (at `stop`); nothing after that belongs to it."""

    members: dict[str, Value] = field(default_factory=dict)
    end: int | None = None
    broken: bool = False
    stop: int = 0

    @property
    def closed(self) -> bool:
        return self.end is not None


def skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i


def skip_value(text: str, i: int) -> tuple[int, bool, bool]:
    """(stop, closed, broken) of the value starting at text[i]."""
    first = text[i]
    if first == '"':
        end = _string_end(text, i)
        return (len(text), False, False) if end is None else (end, True, False)
    if first in _CLOSERS:
        return _container_end(text, i)
    j = i
    while j < len(text) and text[j] in _LITERAL_CHARS:
        j += 1
    if j == i:
        return i, False, True
    if j == len(text):
        return j, False, False  # a number or keyword may still be growing
    try:
        json.loads(text[i:j])
    except ValueError:
        return j, False, True
    return j, True, False


def _string_end(text: str, i: int) -> int | None:
    j = i + 1
    while j < len(text):
        char = text[j]
        if char == "\\":
            j += 2
            continue
        if char == '"':
            return j + 1
        j += 1
    return None


def _container_end(text: str, i: int) -> tuple[int, bool, bool]:
    """Brackets matched (strings skipped); not validated inside: a complete but
    malformed value is the model's text, reported as such."""
    stack = [_CLOSERS[text[i]]]
    j = i + 1
    while j < len(text):
        char = text[j]
        if char == '"':
            end = _string_end(text, j)
            if end is None:
                return len(text), False, False
            j = end
            continue
        if char in _CLOSERS:
            stack.append(_CLOSERS[char])
        elif char in "}]":
            if char != stack.pop():
                return j, False, True
            if not stack:
                return j + 1, True, False
        j += 1
    return len(text), False, False


def scan_object(text: str, start: int) -> Scan:
    """The object whose `{` is text[start]."""
    scan = Scan()
    i = skip_ws(text, start + 1)
    if i < len(text) and text[i] == "}":
        return _end(scan, i + 1)
    while i < len(text):
        if text[i] != '"':
            return _broken(scan, i)
        key_end = _string_end(text, i)
        if key_end is None:
            return _open(scan, len(text))
        try:
            key = json.loads(text[i:key_end])
        except ValueError:
            return _broken(scan, i)
        i = skip_ws(text, key_end)
        if i >= len(text):
            return _open(scan, i)
        if text[i] != ":":
            return _broken(scan, i)
        i = skip_ws(text, i + 1)
        if i >= len(text):
            return _open(scan, i)
        stop, closed, broken = skip_value(text, i)
        scan.members.setdefault(key, Value(i, stop, closed))
        done, i = _after_member(scan, text, stop, closed, broken, "}")
        if done is not None:
            return done
    return _open(scan, len(text))


def scan_array(text: str, start: int) -> Scan:
    """The array whose `[` is text[start]; members keyed "0", "1", ..."""
    scan = Scan()
    i = skip_ws(text, start + 1)
    if i < len(text) and text[i] == "]":
        return _end(scan, i + 1)
    while i < len(text):
        stop, closed, broken = skip_value(text, i)
        scan.members[str(len(scan.members))] = Value(i, stop, closed)
        done, i = _after_member(scan, text, stop, closed, broken, "]")
        if done is not None:
            return done
    return _open(scan, len(text))


def _after_member(
    scan: Scan, text: str, stop: int, closed: bool, broken: bool, closer: str
) -> tuple[Scan | None, int]:
    """After a member's value (ending at stop): the finished scan when the container ends,
    breaks or is cut off there; else (None, where the next member starts)."""
    if broken:
        return _broken(scan, stop), stop
    if not closed:
        return _open(scan, stop), stop
    i = skip_ws(text, stop)
    if i >= len(text):
        return _open(scan, i), i
    if text[i] == closer:
        return _end(scan, i + 1), i
    if text[i] != ",":
        return _broken(scan, i), i
    return None, skip_ws(text, i + 1)


def _end(scan: Scan, end: int) -> Scan:
    scan.end = scan.stop = end
    return scan


def _open(scan: Scan, stop: int) -> Scan:
    scan.stop = stop
    return scan


def _broken(scan: Scan, stop: int) -> Scan:
    scan.broken, scan.stop = True, stop
    return scan


def string_value(raw: str, closed: bool) -> str | None:
    """The decoded text of a JSON string literal (`raw` starts with its quote); while
    open, the longest prefix that decodes for good (an escape cut in half, or half of a
    surrogate pair, waits). None when it is not a string."""
    if not raw.startswith('"'):
        return None
    if closed:
        try:
            return json.loads(raw)
        except ValueError:
            return None
    body = raw[1:]
    for cut in range(0, min(len(body), 12) + 1):
        candidate = body[: len(body) - cut]
        if (len(candidate) - len(candidate.rstrip("\\"))) % 2:
            continue  # ends inside an escape
        try:
            decoded = json.loads('"' + candidate + '"')
        except ValueError:
            continue
        if decoded and "\ud800" <= decoded[-1] <= "\udbff":
            continue  # the low surrogate is still to come
        return decoded
    return ""
