from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from protoserve.common.v1 import chat_pb2
from service.chat import ChatRenderSettings, render_prompt
from service.demo_model import CHATML_TEMPLATE
from service.errors import InvalidArgument

SETTINGS = ChatRenderSettings(CHATML_TEMPLATE)


def messages(*pairs: tuple[str, str]) -> list[chat_pb2.ChatMessage]:
    return [chat_pb2.ChatMessage(role=r, content=c) for r, c in pairs]


def test_rendering_equals_transformers_apply_chat_template(demo_model_dir) -> None:
    hf = AutoTokenizer.from_pretrained(demo_model_dir)
    convo = [
        ("system", "Be brief."),
        ("user", "Hi there"),
        ("assistant", "Hello!"),
        ("user", "How are you?"),
    ]
    expected = hf.apply_chat_template(
        [{"role": r, "content": c} for r, c in convo], tokenize=False, add_generation_prompt=True
    )
    assert render_prompt(messages(*convo), chat_pb2.ChatTemplateOptions(), [], SETTINGS) == expected


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


def test_missing_template_and_untrusted_request_template() -> None:
    with pytest.raises(InvalidArgument, match="no chat template"):
        render_prompt(
            messages(("user", "x")), chat_pb2.ChatTemplateOptions(), [], ChatRenderSettings(None)
        )
    options = chat_pb2.ChatTemplateOptions(chat_template="{{ 'x' }}")
    with pytest.raises(InvalidArgument, match="trust-request-chat-template"):
        render_prompt(messages(("user", "x")), options, [], SETTINGS)


def test_sandbox_blocks_attribute_escapes() -> None:
    evil = ChatRenderSettings("{{ messages.__class__.__mro__ }}")
    with pytest.raises(InvalidArgument):
        render_prompt(messages(("user", "x")), chat_pb2.ChatTemplateOptions(), [], evil)
