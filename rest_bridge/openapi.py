"""Request bodies in the bridge's OpenAPI document (/openapi.json, /docs).

The routes read their bodies themselves (body.parse_json, audio's multipart form) to keep
vLLM's error behaviour, so FastAPI cannot see them; `json_body(Model)` / `form_body(Model)`
go into a route's `openapi_extra`, and `install` moves the models' shared definitions
into components.schemas. Clients, docs and the schemathesis fuzzer read the result."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

REF_TEMPLATE = "#/components/schemas/{model}"


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    return _body("application/json", schema)


def form_body(model: type[BaseModel], file_field: str = "file") -> dict[str, Any]:
    """A multipart form: the model's fields plus a required uploaded file."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    schema["properties"] = {
        file_field: {"type": "string", "format": "binary"},
        **schema.get("properties", {}),
    }
    schema["required"] = [file_field, *schema.get("required", [])]
    return _body("multipart/form-data", schema)


def _body(media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {media_type: {"schema": schema}}}}


def install(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # FastAPI's, cached on the app
        _hoist_definitions(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _hoist_definitions(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                for name, definition in media["schema"].pop("$defs", {}).items():
                    if schemas.setdefault(name, definition) != definition:
                        raise ValueError(f"two request models define {name!r} differently")
