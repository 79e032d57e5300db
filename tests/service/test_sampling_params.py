"""Request parameters -> engine SamplingParams: generation-config defaults (auto, vllm,
a folder, overrides), ranges and their errors, bad words, structured-output specs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from engine.structured import StructuredOutputSpec
from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from service.cli.flags import parse_json_object
from service.errors import InvalidArgument
from service.generation_config import SamplingDefaults, load_defaults
from service.params import build_params
from service.tokenizer import Tokenizer

GENERATION_CONFIG = {
    "temperature": 0.6,
    "top_p": 0.9,
    "top_k": 20,
    "repetition_penalty": 1.1,
    "max_new_tokens": 64,
    "do_sample": True,  # not a sampling default: ignored, as vLLM does
    "eos_token_id": 2,
}


@pytest.fixture(scope="module")
def tokenizer(demo_model_dir) -> Tokenizer:
    return Tokenizer(str(demo_model_dir))


def _model(tokenizer, defaults: SamplingDefaults | None = None, max_logprobs: int = 20):
    return SimpleNamespace(
        defaults=defaults or SamplingDefaults(),
        vocab_size=1024,
        tokenizer=tokenizer,
        max_logprobs=max_logprobs,
    )


def test_generation_config_sources(tmp_path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG))
    auto = load_defaults(str(tmp_path))
    assert auto == SamplingDefaults(
        temperature=0.6, top_p=0.9, top_k=20, repetition_penalty=1.1, max_tokens=64
    )
    assert load_defaults(str(tmp_path), "vllm") == SamplingDefaults()
    assert load_defaults("/nonexistent", str(tmp_path)) == auto  # a folder
    merged = load_defaults(str(tmp_path), "auto", {"temperature": 0.2, "min_p": 0.05})
    assert merged.temperature == 0.2 and merged.min_p == 0.05 and merged.top_k == 20
    assert load_defaults(str(tmp_path), "vllm", {"top_k": 5}) == SamplingDefaults(top_k=5)
    with pytest.raises(ValueError):
        load_defaults(str(tmp_path), str(tmp_path / "missing"))
    assert parse_json_object('{"temperature": 0.5}') == '{"temperature": 0.5}'


def test_request_values_win_over_server_defaults(tokenizer) -> None:
    defaults = SamplingDefaults(temperature=0.6, top_k=20, repetition_penalty=1.1)
    plain = build_params(pb.GenerateRequest(text="x"), _model(tokenizer, defaults), max_tokens=8)
    assert (plain.sampling.temperature, plain.sampling.top_k) == (0.6, 20)
    assert plain.sampling.repetition_penalty == 1.1
    request = pb.GenerateRequest(
        text="x",
        sampling=params_pb2.SamplingParams(temperature=0, top_k=0),
        penalties=params_pb2.PenaltyParams(repetition_penalty=1.0),
    )
    own = build_params(request, _model(tokenizer, defaults), max_tokens=8)
    assert (own.sampling.temperature, own.sampling.top_k, own.sampling.repetition_penalty) == (
        0.0,
        0,
        1.0,
    )


@pytest.mark.parametrize(
    "request_fields,field",
    [
        ({"sampling": params_pb2.SamplingParams(top_p=0)}, "top_p"),
        ({"sampling": params_pb2.SamplingParams(n=0)}, "n"),
        ({"sampling": params_pb2.SamplingParams(n=3, best_of=2, temperature=1)}, "best_of"),
        ({"sampling": params_pb2.SamplingParams(best_of=2, temperature=0)}, "best_of"),
        ({"output": params_pb2.OutputOptions(logprobs=21)}, "logprobs"),
        ({"output": params_pb2.OutputOptions(logprobs=-1)}, "logprobs"),
        ({"output": params_pb2.OutputOptions(prompt_logprobs=-2)}, "prompt_logprobs"),
        ({"penalties": params_pb2.PenaltyParams(logit_bias={5000: 1.0})}, "logit_bias"),
        ({"penalties": params_pb2.PenaltyParams(frequency_penalty=-3)}, "frequency_penalty"),
        (
            {
                "sampling": params_pb2.SamplingParams(use_beam_search=True),
                "output": params_pb2.OutputOptions(prompt_logprobs=1),
            },
            "prompt_logprobs",
        ),  # fmt: skip
        ({"structured_output": params_pb2.StructuredOutput()}, "structured_outputs"),
        (
            {"structured_output": params_pb2.StructuredOutput(choice=params_pb2.ChoiceList())},
            "structured_outputs.choice",
        ),
    ],
)
def test_errors_name_their_field(tokenizer, request_fields, field) -> None:
    with pytest.raises((InvalidArgument, ValueError)) as error:
        build_params(
            pb.GenerateRequest(text="x", **request_fields), _model(tokenizer), max_tokens=8
        )
    assert getattr(error.value, "field", None) == field


def test_whole_vocabulary_logprobs_when_the_server_allows_it(tokenizer) -> None:
    request = pb.GenerateRequest(text="x", output=params_pb2.OutputOptions(logprobs=-1))
    params = build_params(request, _model(tokenizer, max_logprobs=-1), max_tokens=8)
    assert params.sampling.logprobs == -1 and params.output.logprobs


def test_bad_words_best_of_beam_and_structured_specs(tokenizer) -> None:
    request = pb.GenerateRequest(
        text="x",
        sampling=params_pb2.SamplingParams(n=2, best_of=3, temperature=0.8),
        penalties=params_pb2.PenaltyParams(bad_words=["garden", " slice"]),
        structured_output=params_pb2.StructuredOutput(
            json_schema='{"type": "object"}', disable_any_whitespace=True
        ),
    )
    params = build_params(request, _model(tokenizer), max_tokens=8)
    plain = tuple(tokenizer.encode("garden", add_special_tokens=False))
    spaced = tuple(tokenizer.encode(" garden", add_special_tokens=False))
    assert plain in params.sampling.bad_words_token_ids
    assert (spaced in params.sampling.bad_words_token_ids) == (len(spaced) == len(plain))
    assert params.sampling.logprobs == 0  # best_of ranks candidates by cumulative logprob
    assert not params.output.logprobs and params.output.best_of == 3
    assert params.sampling.structured_output == StructuredOutputSpec(
        "json", '{"type": "object"}', disable_any_whitespace=True
    )
    beam = pb.GenerateRequest(
        text="x", sampling=params_pb2.SamplingParams(n=2, best_of=4, use_beam_search=True)
    )
    params = build_params(beam, _model(tokenizer), max_tokens=8)
    assert params.sampling.use_beam_search and params.sampling.beam_width == 4


def test_seed_minus_one_means_none(tokenizer) -> None:
    request = pb.GenerateRequest(text="x", sampling=params_pb2.SamplingParams(seed=-1))
    assert build_params(request, _model(tokenizer), max_tokens=8).sampling.seed is None


def test_explicit_zero_penalties_override_non_zero_defaults(tokenizer) -> None:
    defaults = SamplingDefaults(presence_penalty=1.5, frequency_penalty=0.5)
    plain = build_params(pb.GenerateRequest(text="x"), _model(tokenizer, defaults), max_tokens=8)
    assert (plain.sampling.presence_penalty, plain.sampling.frequency_penalty) == (1.5, 0.5)
    zero = pb.GenerateRequest(
        text="x", penalties=params_pb2.PenaltyParams(presence_penalty=0, frequency_penalty=0)
    )
    own = build_params(zero, _model(tokenizer, defaults), max_tokens=8)
    assert (own.sampling.presence_penalty, own.sampling.frequency_penalty) == (0.0, 0.0)


def test_skip_special_tokens_default_applies_only_when_unset(tokenizer) -> None:
    model = _model(tokenizer, SamplingDefaults(skip_special_tokens=False))
    plain = build_params(pb.GenerateRequest(text="x"), model, max_tokens=8)
    assert not plain.output.skip_special_tokens
    request = pb.GenerateRequest(
        text="x", output=params_pb2.OutputOptions(skip_special_tokens=True)
    )
    assert build_params(request, model, max_tokens=8).output.skip_special_tokens


@pytest.mark.parametrize("request_type", [pb.GenerateRequest, pb.ChatRequest])
def test_thinking_token_budget_is_refused_not_ignored(tokenizer, request_type) -> None:
    with pytest.raises(InvalidArgument) as error:
        build_params(request_type(thinking_token_budget=64), _model(tokenizer), max_tokens=8)
    assert error.value.field == "thinking_token_budget"
    unlimited = build_params(
        request_type(thinking_token_budget=-1), _model(tokenizer), max_tokens=8
    )
    assert unlimited.sampling.max_tokens == 8  # -1 is what the server does anyway
