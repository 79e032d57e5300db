from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from protoserve.common.v1 import chat_pb2
from service import chat_template
from service.chat import ChatRenderSettings, render_prompt
from service.demo_model import CHATML_TEMPLATE
from service.errors import InvalidArgument
from tests.service import conversations as convo

SETTINGS = ChatRenderSettings(CHATML_TEMPLATE)


def messages(*pairs: tuple[str, str]) -> list[chat_pb2.ChatMessage]:
    return [chat_pb2.ChatMessage(role=r, content=c) for r, c in pairs]


@pytest.fixture(scope="module")
def hf(demo_model_dir):
    return AutoTokenizer.from_pretrained(demo_model_dir)


def settings_for(hf, source: str, content_format: str = "auto") -> ChatRenderSettings:
    specials = {k: v for k, v in hf.special_tokens_map.items() if isinstance(v, str)}
    return ChatRenderSettings(source, special_tokens=specials, content_format=content_format)


def test_rendering_equals_transformers_apply_chat_template(demo_model_dir) -> None:
    hf = AutoTokenizer.from_pretrained(demo_model_dir)
    pairs = [
        ("system", "Be brief."),
        ("user", "Hi there"),
        ("assistant", "Hello!"),
        ("user", "How are you?"),
    ]
    expected = hf.apply_chat_template(
        [{"role": r, "content": c} for r, c in pairs], tokenize=False, add_generation_prompt=True
    )
    assert render_prompt(messages(*pairs), chat_pb2.ChatTemplateOptions(), [], SETTINGS) == expected


PARITY_CASES = [
    # (template file, conversation, tools, template kwargs)
    ("llama3_1_tools.jinja", convo.SIMPLE, None, {}),
    ("llama3_1_tools.jinja", convo.ONE_TOOL_CALL, convo.TOOLS, {}),
    ("llama3_1_tools.jinja", convo.ONE_TOOL_CALL, convo.TOOLS, {"tools_in_user_message": False}),
    ("qwen3.jinja", convo.SIMPLE, None, {}),
    ("qwen3.jinja", convo.ONE_TOOL_CALL, convo.TOOLS, {}),
    ("qwen3.jinja", convo.PARALLEL_CALLS_WITH_REASONING, convo.TOOLS, {}),
    ("qwen3.jinja", convo.SIMPLE, None, {"enable_thinking": False}),
    ("mistral_v0_3_tools.jinja", convo.SIMPLE, None, {}),
    ("mistral_v0_3_tools.jinja", convo.MISTRAL_TOOL_TURN, convo.TOOLS, {}),
    ("qwen2_vl_content_parts.jinja", convo.CONTENT_PARTS, None, {}),
    ("qwen2_vl_content_parts.jinja", convo.SIMPLE, None, {}),
]


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize(
    "name,conversation,tools,kwargs",
    PARITY_CASES,
    ids=[f"{c[0].split('.')[0]}-{i}" for i, c in enumerate(PARITY_CASES)],
)
def test_real_templates_render_as_transformers(
    hf, name, conversation, tools, kwargs, add_generation_prompt
) -> None:
    """Tool-call arguments reach transformers as objects: the API sends JSON text, which
    the service parses for the template (as vLLM)."""
    source = convo.template(name)
    expected = hf.apply_chat_template(
        conversation,
        tools=tools,
        chat_template=source,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )
    options = chat_pb2.ChatTemplateOptions(add_generation_prompt=add_generation_prompt)
    if kwargs:
        options.chat_template_kwargs.update(kwargs)
    text = render_prompt(
        convo.as_proto(conversation),
        options,
        convo.tools_proto(tools or []),
        settings_for(hf, source),
    )
    assert text == expected


@pytest.mark.parametrize(
    "name", ["qwen3.jinja", "llama3_1_tools.jinja", "qwen2_vl_content_parts.jinja"]
)
def test_continue_final_message_as_transformers(hf, name) -> None:
    conversation = [*convo.SIMPLE[:3], {"role": "user", "content": "Go on"},
                    {"role": "assistant", "content": "Once upon a time "}]  # fmt: skip
    source = convo.template(name)
    expected = hf.apply_chat_template(
        conversation, chat_template=source, tokenize=False, continue_final_message=True
    )
    options = chat_pb2.ChatTemplateOptions(add_generation_prompt=False, continue_final_message=True)
    text = render_prompt(convo.as_proto(conversation), options, [], settings_for(hf, source))
    assert text == expected
    assert text.rstrip().endswith("Once upon a time")


def test_documents_reach_the_template_as_transformers(hf) -> None:
    source = (
        "{% for d in documents %}[{{ d.title }}] {{ d.text }}\n{% endfor %}"
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    )
    documents = [{"title": "Tides", "text": "The moon pulls."}, {"title": "Sun", "text": "Hot."}]
    conversation = [{"role": "user", "content": "Why tides?"}]
    expected = hf.apply_chat_template(
        conversation, documents=documents, chat_template=source, tokenize=False
    )
    options = chat_pb2.ChatTemplateOptions()
    for document in documents:
        options.documents.add(fields=document)
    assert (
        render_prompt(convo.as_proto(conversation), options, [], settings_for(hf, source))
        == expected
    )


def test_content_format_is_detected_and_logged(monkeypatch) -> None:
    logged: list[dict] = []

    class Recorder:
        def info(self, event: str, **fields) -> None:
            logged.append({"event": event, **fields})

    monkeypatch.setattr(chat_template, "log", Recorder())
    chat_template.content_format.cache_clear()
    parts = convo.template("qwen2_vl_content_parts.jinja")
    assert chat_template.content_format(parts) == "openai"
    for name in ("qwen3.jinja", "llama3_1_tools.jinja", "mistral_v0_3_tools.jinja"):
        assert chat_template.content_format(convo.template(name)) == "string"
    assert chat_template.content_format(parts) == "openai"  # cached: logged once
    assert [e["content_format"] for e in logged] == ["openai", "string", "string", "string"]
    aliased = (
        "{% set msgs = messages %}{% for m in msgs %}"
        "{% for p in m.content %}{{ p.text }}{% endfor %}{% endfor %}"
    )
    assert chat_template.content_format(aliased) == "openai"


def test_content_format_flag_overrides_detection(hf) -> None:
    parts = convo.as_proto(convo.CONTENT_PARTS[:1])
    source = convo.template("qwen2_vl_content_parts.jinja")
    options = chat_pb2.ChatTemplateOptions(add_generation_prompt=False)
    as_parts = render_prompt(parts, options, [], settings_for(hf, source, "openai"))
    assert "Describethis." in as_parts
    as_string = render_prompt(parts, options, [], settings_for(hf, source, "string"))
    assert "Describe\nthis." in as_string  # text parts joined with a newline


def test_generation_tag_renders_its_body(hf) -> None:
    source = "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}"
    conversation = [{"role": "assistant", "content": "kept"}]
    expected = hf.apply_chat_template(conversation, chat_template=source, tokenize=False)
    assert render_prompt(convo.as_proto(conversation), chat_pb2.ChatTemplateOptions(), [],
                         settings_for(hf, source)) == expected == "kept"  # fmt: skip


def test_default_kwargs_and_reasoning_effort_reach_the_template() -> None:
    source = "{{ flavour }} {{ enable_thinking }} {{ reasoning_effort }}"
    settings = ChatRenderSettings(
        source, default_kwargs={"flavour": "plain", "enable_thinking": True}
    )
    options = chat_pb2.ChatTemplateOptions(reasoning_effort="none")
    assert render_prompt(messages(("user", "x")), options, [], settings) == "plain False none"
    options.chat_template_kwargs.update({"flavour": "spicy", "enable_thinking": True})
    assert render_prompt(messages(("user", "x")), options, [], settings) == "spicy True none"


def test_no_generation_prompt() -> None:
    options = chat_pb2.ChatTemplateOptions(add_generation_prompt=False)
    text = render_prompt(messages(("user", "x")), options, [], SETTINGS)
    assert text == "<|im_start|>user\nx<|im_end|>\n"


def test_continue_final_message_leaves_it_open() -> None:
    options = chat_pb2.ChatTemplateOptions(add_generation_prompt=False, continue_final_message=True)
    text = render_prompt(messages(("user", "x"), ("assistant", "Once upon")), options, [], SETTINGS)
    assert text.endswith("<|im_start|>assistant\nOnce upon")


def test_both_generation_prompt_and_continue_is_rejected() -> None:
    options = chat_pb2.ChatTemplateOptions(add_generation_prompt=True, continue_final_message=True)
    with pytest.raises(InvalidArgument) as error:
        render_prompt(messages(("user", "x")), options, [], SETTINGS)
    assert error.value.field == "continue_final_message"


def test_template_errors_are_invalid_argument_with_the_templates_message() -> None:
    broken = ChatRenderSettings("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(InvalidArgument, match="roles must alternate"):
        render_prompt(messages(("user", "x")), chat_pb2.ChatTemplateOptions(), [], broken)
    mistral = ChatRenderSettings(convo.template("mistral_v0_3_tools.jinja"))
    with pytest.raises(InvalidArgument, match="roles must alternate") as error:
        render_prompt(
            messages(("user", "x"), ("user", "y")), chat_pb2.ChatTemplateOptions(), [], mistral
        )
    assert error.value.field == "messages"
    with pytest.raises(InvalidArgument, match="Invalid chat template") as error:
        render_prompt(messages(("user", "x")), chat_pb2.ChatTemplateOptions(), [],
                      ChatRenderSettings("{% for %}"))  # fmt: skip
    assert error.value.field == "chat_template"


def test_missing_template_and_untrusted_request_template() -> None:
    with pytest.raises(InvalidArgument, match="no chat template"):
        render_prompt(
            messages(("user", "x")), chat_pb2.ChatTemplateOptions(), [], ChatRenderSettings(None)
        )
    options = chat_pb2.ChatTemplateOptions(chat_template="{{ 'x' }}")
    with pytest.raises(InvalidArgument, match="trust-request-chat-template"):
        render_prompt(messages(("user", "x")), options, [], SETTINGS)


def test_sandbox_blocks_attribute_escapes() -> None:
    for evil in ("{{ messages.__class__.__mro__ }}", "{% set ns = namespace(_x=1) %}"):
        with pytest.raises(InvalidArgument):
            render_prompt(messages(("user", "x")), chat_pb2.ChatTemplateOptions(), [],
                          ChatRenderSettings(evil))  # fmt: skip
    hidden = ChatRenderSettings("{{ dict.__class__ }}{{ namespace.__init__ }}")
    assert render_prompt(messages(("user", "x")), chat_pb2.ChatTemplateOptions(), [], hidden) == ""
