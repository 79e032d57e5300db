"""The chat pipeline over a scripted engine (it "generates" a given text token by token):
the response role, echo, tool rendering, the parameters a forced choice or a parser
needs, and the parsed choices of a unary and a streamed run."""

from __future__ import annotations

import json

import pytest

from engine import FinishReason, SamplingParams
from engine.outputs import RequestOutput
from protoserve.common.v1 import chat_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from service.chat import ChatRenderSettings
from service.chat_pipeline import prepare_chat
from service.config import ChatOptions
from service.errors import InvalidArgument
from service.generation import FinishKind, GenerationJob
from service.params import OutputSettings, RequestParams
from service.registry import ServedModel
from service.tokenizer import Tokenizer
from tests.service import conversations as convo

EOS = 2  # <|im_end|> in the demo tokenizer


class ScriptedEngine:
    """Writes `text` (then EOS) one token per output, whatever the prompt."""

    def __init__(self, tokenizer: Tokenizer, text: str) -> None:
        self.ids = tokenizer.encode(text, add_special_tokens=False) + [EOS]

    async def generate(self, request_id, prompt_token_ids, params, **kwargs):
        for i, token in enumerate(self.ids):
            last = i == len(self.ids) - 1
            yield RequestOutput(
                request_id, [token], last, FinishReason.STOP if last else None,
                EOS if last else None, len(prompt_token_ids), 0, i + 1,
            )  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(demo_model_dir) -> Tokenizer:
    return Tokenizer(str(demo_model_dir))


def model(tokenizer, text="", template="qwen3.jinja", **options) -> ServedModel:
    return ServedModel(
        names=("demo",), root="", created=0, architecture="LlamaForCausalLM", dtype="float32",
        engine=ScriptedEngine(tokenizer, text), tokenizer=tokenizer,
        chat=ChatRenderSettings(convo.template(template),
                                special_tokens=tokenizer.special_tokens()),
        max_model_len=4096, vocab_size=tokenizer.vocab_size, eos_token_ids=frozenset({EOS}),
        chat_options=ChatOptions(**options),
    )  # fmt: skip


def request(**fields) -> pb.ChatRequest:
    return pb.ChatRequest(messages=convo.as_proto(convo.ONE_TOOL_CALL[:2]), **fields)


def prepare(served: ServedModel, chat_request: pb.ChatRequest):
    def make_job(prompt):
        params = RequestParams(SamplingParams(max_tokens=64), OutputSettings())
        return GenerationJob("r1", served, prompt, params)

    return prepare_chat(chat_request, served, make_job)


TOOLS = convo.tools_proto(convo.TOOLS)
HERMES = {"enable_auto_tool_choice": True, "tool_call_parser": "hermes"}


def test_response_role_and_role_of_the_last_message(tokenizer) -> None:
    served = model(tokenizer, response_role="bot")
    assert prepare(served, request()).role == "bot"
    continued = request(template=chat_pb2.ChatTemplateOptions(add_generation_prompt=False))
    continued.messages.add(role="assistant", content="It is")
    chat = prepare(served, continued)
    assert chat.role == "assistant" and chat.echo is None


def test_echo_is_the_last_message_of_the_reply_role(tokenizer) -> None:
    chat_request = request(template=chat_pb2.ChatTemplateOptions(
        add_generation_prompt=False, continue_final_message=True))  # fmt: skip
    chat_request.messages.add(role="assistant", content="It is")
    chat_request.output.echo = True
    chat = prepare(model(tokenizer, " sunny."), chat_request)
    assert chat.echo == "It is" and chat.prompt_text.endswith("It is")


def test_tools_render_unless_excluded_with_tool_choice_none(tokenizer) -> None:
    none = chat_pb2.ToolChoice(mode=chat_pb2.ToolChoice.MODE_NONE)
    shown = prepare(model(tokenizer), request(tools=TOOLS, tool_choice=none))
    assert '"name": "get_weather"' in shown.prompt_text
    hidden = prepare(model(tokenizer, exclude_tools_when_tool_choice_none=True),
                     request(tools=TOOLS, tool_choice=none))  # fmt: skip
    assert "get_weather" not in hidden.prompt_text


def test_forced_choices_constrain_the_output(tokenizer) -> None:
    named = prepare(model(tokenizer), request(
        tools=TOOLS, tool_choice=chat_pb2.ToolChoice(function_name="get_time")))  # fmt: skip
    spec = named.job.params.sampling.structured_output
    assert json.loads(spec.value) == convo.TIME_TOOL["function"]["parameters"]
    required = prepare(model(tokenizer), request(
        tools=TOOLS, tool_choice=chat_pb2.ToolChoice(mode=chat_pb2.ToolChoice.MODE_REQUIRED),
        parallel_tool_calls=False))  # fmt: skip
    schema = json.loads(required.job.params.sampling.structured_output.value)
    assert schema["minItems"] == schema["maxItems"] == 1
    names = [item["properties"]["name"]["enum"] for item in schema["items"]["anyOf"]]
    assert names == [["get_weather"], ["get_time"]]


def test_parsers_that_read_special_tokens_keep_them(tokenizer) -> None:
    mistral = prepare(model(tokenizer, enable_auto_tool_choice=True, tool_call_parser="mistral"),
                      request(tools=TOOLS))  # fmt: skip
    assert mistral.job.params.output.skip_special_tokens is False
    plain = prepare(model(tokenizer, **HERMES), request())
    assert plain.job.params.output.skip_special_tokens is True


@pytest.mark.parametrize(
    "choice,message",
    [
        (chat_pb2.ToolChoice(mode=chat_pb2.ToolChoice.MODE_AUTO), "--enable-auto-tool-choice"),
        (chat_pb2.ToolChoice(function_name="nope"), "does not match"),
    ],
)
def test_tool_choice_errors_name_the_field(tokenizer, choice, message) -> None:
    with pytest.raises(InvalidArgument, match=message) as error:
        prepare(model(tokenizer), request(tools=TOOLS, tool_choice=choice))
    assert error.value.field == "tool_choice"


ANSWER = (
    "<think>\nNeed weather.\n</think>\n\nChecking.\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
)


async def test_unary_and_streamed_choices_agree(tokenizer) -> None:
    served = model(tokenizer, ANSWER, reasoning_parser="qwen3", **HERMES)
    [choice] = await prepare(served, request(tools=TOOLS)).collect()
    output = choice.output
    assert choice.finish.kind is FinishKind.TOOL_CALLS
    assert (output.reasoning, output.content) == ("\nNeed weather.\n", "\n\nChecking.")
    assert [(c.name, c.arguments) for c in output.tool_calls] == [
        ("get_weather", '{"city": "Oslo"}')
    ]
    chat = prepare(served, request(tools=TOOLS))
    reasoning = content = arguments = ""
    async for delta in chat.deltas():
        reasoning += delta.output.reasoning
        content += delta.output.content
        arguments += "".join(c.arguments for c in delta.output.tool_calls)
        finish = delta.finish
    assert (reasoning, content, arguments) == (output.reasoning, output.content, '{"city": "Oslo"}')
    assert finish.kind is FinishKind.TOOL_CALLS
    assert 0 < chat.job.usage.reasoning_tokens < chat.job.usage.completion_tokens
    hidden = prepare(served, request(tools=TOOLS, include_reasoning=False))
    [choice] = await hidden.collect()
    assert choice.output.reasoning is None and hidden.job.usage.reasoning_tokens > 0
