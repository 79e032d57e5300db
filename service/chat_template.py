"""Chat-template rendering in a sandboxed Jinja environment, compatible with the
templates Hugging Face models ship (same environment options, filters and globals as
`transformers`' apply_chat_template). Templates are compiled once and cached."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from service.errors import InvalidArgument


class TemplateError(InvalidArgument):
    """The template failed to render (its own message is kept)."""


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Like transformers: no HTML escaping, unlike Jinja's built-in tojson.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@lru_cache(maxsize=64)
def compile_template(source: str) -> jinja2.Template:
    """Compile (once per distinct source) or raise TemplateError naming the problem."""
    try:
        return _environment().from_string(source)
    except jinja2.exceptions.TemplateError as exc:
        raise TemplateError(f"Invalid chat template: {exc}", field="chat_template") from exc


def render(source: str, variables: dict[str, Any]) -> str:
    """Render a chat template; template errors become INVALID_ARGUMENT with their message."""
    template = compile_template(source)
    try:
        return template.render(**variables)
    except jinja2.exceptions.TemplateError as exc:
        raise TemplateError(f"Chat template error: {exc}", field="messages") from exc
    except InvalidArgument:
        raise
    except Exception as exc:  # noqa: BLE001 - a template is code: 1/0, runaway recursion ...
        raise TemplateError(f"Chat template error: {exc!r}", field="messages") from exc
