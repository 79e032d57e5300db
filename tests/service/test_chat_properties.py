"""Property tests (hypothesis) of chat rendering: any typed conversation renders with a
model's template (the demo's ChatML) into a prompt holding every message in order, or is
refused with INVALID_ARGUMENT naming the field; and a caller's template, whatever its
text, renders or fails with INVALID_ARGUMENT, never another exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protoserve.common.v1 import chat_pb2
from service.chat import ChatRenderSettings, render_prompt
from service.demo_model import CHATML_TEMPLATE
from service.errors import InvalidArgument

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)
SETTINGS = ChatRenderSettings(CHATML_TEMPLATE, trust_request_chat_template=True)
ROLES = st.sampled_from(["system", "user", "assistant", "tool", "developer", "", "x"])


@st.composite
def messages(draw) -> chat_pb2.ChatMessage:
    message = chat_pb2.ChatMessage(role=draw(ROLES), name=draw(st.text(max_size=5)))
    if draw(st.booleans()):
        message.content = draw(st.text(max_size=40))
    else:
        for text in draw(st.lists(st.text(max_size=10), max_size=3)):
            message.parts.add(text=text)
    if draw(st.booleans()):
        message.reasoning = draw(st.text(max_size=10))
    return message


def options(**fields) -> chat_pb2.ChatTemplateOptions:
    return chat_pb2.ChatTemplateOptions(**fields)


@PROPERTY
@given(conversation=st.lists(messages(), max_size=5), generation_prompt=st.booleans())
def test_conversations_render_in_order_or_are_refused(conversation, generation_prompt) -> None:
    try:
        text = render_prompt(
            conversation, options(add_generation_prompt=generation_prompt), [], SETTINGS
        )
    except InvalidArgument as error:
        assert error.field == "messages"
        assert not conversation or any(not m.role for m in conversation)
        return
    position = 0
    for message in conversation:
        content = message.content if not message.parts else "\n".join(p.text for p in message.parts)
        header = f"<|im_start|>{message.role}\n{content}<|im_end|>\n"
        found = text.find(header, position)
        assert found >= position, (header, text)
        position = found + len(header)
    assert text.endswith("<|im_start|>assistant\n") == generation_prompt or (
        conversation[-1].role == "assistant" and not generation_prompt
    )


ATOMS = st.sampled_from(
    ["0", "1", "2.5", "-1", "'a'", "''", "none", "true", "messages", "messages[0]",
     "messages[0]['content']", "messages[5]", "add_generation_prompt", "x", "[]", "{}",
     "range(3)", "raise_exception('no')", "strftime_now('%Y')", "().__class__"]
)  # fmt: skip
OPERATORS = st.sampled_from([" + ", " - ", " * ", " / ", " // ", " % ", " ~ ", " == ", " and "])
FILTERS = st.sampled_from(["|tojson", "|length", "|int", "|first", "|trim", "|list", "|string"])


def expressions() -> st.SearchStrategy[str]:
    return st.recursive(
        ATOMS,
        lambda inner: (
            st.tuples(inner, OPERATORS, inner).map("".join)
            | st.tuples(inner, FILTERS).map("".join)
            | inner.map(lambda e: f"({e})")
        ),
        max_leaves=4,
    )


TEMPLATE_PIECES = (
    expressions().map(lambda e: f"{{{{ {e} }}}}")
    | expressions().map(lambda e: f"{{% if {e} %}}y{{% endif %}}")
    | expressions().map(lambda e: f"{{% for m in {e} %}}{{{{ m }}}}{{% endfor %}}")
    | st.sampled_from(["{{", "}}", "{%", "%}", "{# c #}", "text"])
)


@PROPERTY
@given(source=st.lists(TEMPLATE_PIECES | st.text(max_size=4), max_size=6).map("".join))
def test_any_caller_template_renders_or_is_an_invalid_argument(source: str) -> None:
    user = chat_pb2.ChatMessage(role="user", content="hello")
    try:
        text = render_prompt([user], options(chat_template=source), [], SETTINGS)
    except InvalidArgument as error:
        assert error.field in ("chat_template", "messages")
        return  # any other exception (ZeroDivisionError, ...) would be a 500
    assert isinstance(text, str)


def test_template_failures_beyond_jinja_errors_are_invalid_arguments() -> None:
    """Regressions: ZeroDivisionError, NameError and RecursionError escaped as 500s."""
    user = chat_pb2.ChatMessage(role="user", content="hello")
    for source in ("{{ 1/0 }}", "{{ (1e308 * 10)|int }}",
                   "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"):  # fmt: skip
        try:
            render_prompt([user], options(chat_template=source), [], SETTINGS)
        except InvalidArgument as error:
            assert error.field == "messages" and "Chat template error" in error.message
        else:
            raise AssertionError(f"{source!r} rendered")
