"""Chat-template rendering in a sandboxed Jinja environment, compatible with the
templates Hugging Face models ship (the environment `transformers`' apply_chat_template
builds: options, filters, globals, the `{% generation %}` tag). Templates are compiled
once and cached; so is what a template expects as message content (`content_format`)."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.nodes
import structlog
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from service.errors import InvalidArgument

log = structlog.get_logger(__name__)

STRING, OPENAI = "string", "openai"


class TemplateError(InvalidArgument):
    """The template failed to compile or render (its own message is kept)."""


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


class _TemplateDict:
    """`dict(...)` without the type itself (no attribute tricks through it)."""

    def __call__(self, *args, **kwargs) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs) -> dict:
        return dict.fromkeys(*args, **kwargs)


class _Namespace(jinja2.utils.Namespace):
    """`namespace(...)` refusing underscore attributes, as transformers'."""

    def __init__(*args, **kwargs):  # noqa: N805 - Jinja's own signature trick
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"Chat templates cannot store underscore-prefixed attributes, got {name!r}."
            )


class _Generation(Extension):
    """`{% generation %}…{% endgeneration %}` (marks assistant tokens for training):
    rendered as its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller) -> str:
        return caller()


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _Namespace
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


@lru_cache(maxsize=64)
def content_format(source: str) -> str:
    """OPENAI when the template loops over a message's content (a list of typed parts),
    else STRING (content joined into one string). Found in the template's syntax tree,
    following the variables assigned from `messages` and from its items, as vLLM does."""
    try:
        tree = _environment().parse(source)
    except jinja2.exceptions.TemplateError:
        return STRING
    found = OPENAI if _loops_over_content(tree) else STRING
    log.info("chat template content format detected", content_format=found)
    return found


def _loops_over_content(tree: jinja2.nodes.Template) -> bool:
    message_lists = _aliases(tree, {"messages"})
    loops = list(tree.find_all(jinja2.nodes.For))
    messages = {
        loop.target.name
        for loop in loops
        if isinstance(loop.target, jinja2.nodes.Name) and _reads(loop.iter, message_lists)
    }
    messages = _aliases(tree, messages)
    return any(_reads(loop.iter, messages, key="content") for loop in loops)


def _aliases(tree: jinja2.nodes.Template, names: set[str]) -> set[str]:
    """`names` plus every variable assigned from one of them (or an item, slice, filter)."""
    found = set(names)
    changed = True
    while changed:
        changed = False
        for assign in tree.find_all(jinja2.nodes.Assign):
            target = assign.target
            if isinstance(target, jinja2.nodes.Name) and target.name not in found:
                if _reads(assign.node, found):
                    found.add(target.name)
                    changed = True
    return found


def _reads(node: jinja2.nodes.Node, names: set[str], key: str | None = None) -> bool:
    """Whether `node` is one of `names` (or its `key` item), through filters, tests and
    slices."""
    if isinstance(node, jinja2.nodes.Filter | jinja2.nodes.Test):
        return node.node is not None and _reads(node.node, names, key)
    if isinstance(node, jinja2.nodes.Getitem) and isinstance(node.arg, jinja2.nodes.Slice):
        return _reads(node.node, names, key)
    if key is None:
        return isinstance(node, jinja2.nodes.Name) and node.name in names
    if isinstance(node, jinja2.nodes.Getitem):
        is_key = isinstance(node.arg, jinja2.nodes.Const) and node.arg.value == key
        return is_key and _reads(node.node, names)
    if isinstance(node, jinja2.nodes.Getattr):
        return node.attr == key and _reads(node.node, names)
    return False
