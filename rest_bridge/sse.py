"""Server-sent events framing for completions and chat: `data: <json>` frames, an error
frame when a stream fails after it started, and `data: [DONE]` always last."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from rest_bridge.errors import as_api_error

DONE = "data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"


def frame(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def event_stream(payloads: AsyncIterator[dict]) -> AsyncIterator[str]:
    """Frame every payload; on failure one error frame; then [DONE]."""
    try:
        async for payload in payloads:
            yield frame(payload)
    except Exception as exc:  # noqa: BLE001 - the status line is already sent
        yield frame(as_api_error(exc).body())
    yield DONE
