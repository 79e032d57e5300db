"""Server-sent events framing. Completions and chat: `data: <json>` frames, an error
frame when a stream fails after it started, and `data: [DONE]` always last. Responses:
`event: <type>` + `data: <json>` pairs, an `error` event on failure, no [DONE]."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from rest_bridge.errors import as_api_error

DONE = "data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"


# Line breaks JSON leaves raw (it escapes only U+0000-U+001F): a client that splits lines
# on every Unicode line break (Python's str.splitlines, as httpx's iter_lines does) would
# cut a frame in two. Outside strings JSON is ASCII, so escaping them anywhere is safe.
_UNICODE_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def frame(payload: dict) -> str:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data.translate(_UNICODE_LINE_BREAKS)}\n\n"


async def event_stream(payloads: AsyncIterator[dict]) -> AsyncIterator[str]:
    """Frame every payload; on failure one error frame; then [DONE]."""
    try:
        async for payload in payloads:
            yield frame(payload)
    except Exception as exc:  # noqa: BLE001 - the status line is already sent
        yield frame(as_api_error(exc).body())
    yield DONE


def named_frame(payload: dict) -> str:
    """A typed event (the Responses API): `event: <type>` then its data."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {data}\n\n"


async def typed_event_stream(payloads: AsyncIterator[dict]) -> AsyncIterator[str]:
    """Frame every typed event; on failure an `error` event numbered next. No [DONE]: the
    last event (response.completed / .incomplete) ends the stream."""
    sequence = 0
    try:
        async for payload in payloads:
            sequence = payload["sequence_number"] + 1
            yield named_frame(payload)
    except Exception as exc:  # noqa: BLE001 - the status line is already sent
        error = as_api_error(exc)
        yield named_frame(
            {
                "type": "error",
                "code": str(error.status),
                "message": error.message,
                "param": error.param,
                "sequence_number": sequence,
            }
        )
