"""Reading a JSON request body into a pydantic model, with vLLM's error behaviour:
wrong content type, malformed JSON and schema violations are all 400s."""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from rest_bridge.errors import APIError

M = TypeVar("M", bound=BaseModel)


async def parse_json(request: Request, model: type[M]) -> M:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise APIError(
            400, "Unsupported Media Type: Only 'application/json' is allowed", "Bad Request"
        )
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise APIError(
            400, f"1 validation error: JSON decode error: {reason}", "Bad Request", "body"
        ) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def validation_error(exc: ValidationError) -> APIError:
    errors = exc.errors(include_url=False)
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors]
    count = len(errors)
    message = f"{count} validation error{'s' if count != 1 else ''}: " + "; ".join(parts)
    first = errors[0]["loc"] if errors else ()
    param = ".".join(["body", *(str(p) for p in first)]) if first else "body"
    return APIError(400, message, "Bad Request", param)
