"""Protobuf results to the JSON pieces every OpenAI response shares: finish reasons,
stop reasons, usage, ids and timestamps."""

from __future__ import annotations

import time
import uuid
from importlib import metadata

from fastapi import Request

from protoserve.common.v1 import output_pb2
from rest_bridge.errors import bad_request

_FINISH = {
    output_pb2.FINISH_REASON_STOP: "stop",
    output_pb2.FINISH_REASON_LENGTH: "length",
    output_pb2.FINISH_REASON_ABORT: "abort",
    output_pb2.FINISH_REASON_TOOL_CALLS: "tool_calls",
    output_pb2.FINISH_REASON_REPETITION: "repetition",
}


def version() -> str:
    try:
        return metadata.version("protoserve")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def system_fingerprint() -> str:
    return f"protoserve-{version()}"


def finish_reason(info: output_pb2.FinishInfo) -> str | None:
    return _FINISH.get(info.reason)


def stop_reason(info: output_pb2.FinishInfo) -> str | int | None:
    matched = info.WhichOneof("matched")
    return getattr(info, matched) if matched else None


def usage(totals: output_pb2.Usage) -> dict:
    """OpenAI's usage object; prompt_tokens_details.cached_tokens counts prompt tokens
    served from the prefix cache (OpenAI always sends it; vLLM only behind a flag);
    completion_tokens_details.reasoning_tokens the tokens spent thinking, when any."""
    out = {
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "total_tokens": totals.total_tokens,
        "prompt_tokens_details": {"cached_tokens": totals.cached_tokens},
    }
    if totals.reasoning_tokens:  # chat with a reasoning parser
        out["completion_tokens_details"] = {"reasoning_tokens": totals.reasoning_tokens}
    return out


def add_usage(total: output_pb2.Usage, more: output_pb2.Usage) -> None:
    total.prompt_tokens += more.prompt_tokens
    total.completion_tokens += more.completion_tokens
    total.total_tokens += more.total_tokens
    total.cached_tokens += more.cached_tokens
    total.reasoning_tokens += more.reasoning_tokens


def request_id(request: Request, body_request_id: str | None) -> str:
    """X-Request-Id header, else the body's request_id, else a random id (kept on the
    request's state: --enable-request-id-headers echoes it)."""
    header = request.headers.get("x-request-id")
    chosen = header or body_request_id or uuid.uuid4().hex
    _check_request_id(chosen, "X-Request-Id" if header else "request_id")
    request.state.request_id = chosen
    return chosen


MAX_REQUEST_ID_LENGTH = 512


def _check_request_id(request_id: str, param: str) -> None:
    """The id travels as gRPC metadata (x-request-id): printable ASCII, bounded."""
    if len(request_id) > MAX_REQUEST_ID_LENGTH or not all(" " <= c <= "~" for c in request_id):
        raise bad_request(
            f"`{param}` must be at most {MAX_REQUEST_ID_LENGTH} printable ASCII characters.",
            param,
        )


def now() -> int:
    return int(time.time())
