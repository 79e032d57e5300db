"""Bad input is refused with InvalidParameter naming the field (never an assert); bad
configuration fails at start-up with a clear message."""

from __future__ import annotations

import json
import shutil

import pytest
from engine_helpers import VOCAB, make_engine

from engine import (
    CacheConfig,
    EngineConfig,
    InvalidParameter,
    LLMEngine,
    ModelConfig,
    RequestAlreadyExists,
    SamplingParams,
    UnsupportedModel,
)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (SamplingParams(temperature=-0.1), "temperature"),
        (SamplingParams(temperature=2.5), "temperature"),
        (SamplingParams(temperature=float("nan")), "temperature"),
        (SamplingParams(temperature=float("inf")), "temperature"),
        (SamplingParams(top_p=0.0), "top_p"),
        (SamplingParams(top_p=1.5), "top_p"),
        (SamplingParams(top_k=-2), "top_k"),
        (SamplingParams(max_tokens=0), "max_tokens"),
        (SamplingParams(min_tokens=-1), "min_tokens"),
        (SamplingParams(max_tokens=4, min_tokens=5), "min_tokens"),
        (SamplingParams(stop_token_ids=(3, VOCAB)), "stop_token_ids"),
        (SamplingParams(stop_token_ids=(-1,)), "stop_token_ids"),
        (SamplingParams(seed=1 << 63), "seed"),
    ],
)
def test_sampling_params_out_of_range(params: SamplingParams, field: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        params.validate(VOCAB)
    assert err.value.field == field and isinstance(err.value, ValueError)


def test_valid_edges_pass() -> None:
    for params in (
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=2.0, top_k=-1),
        SamplingParams(top_p=1e-6, top_k=1, seed=-(1 << 63)),
        SamplingParams(max_tokens=3, min_tokens=3, stop_token_ids=(0, VOCAB - 1)),
    ):
        params.validate(VOCAB)
    assert (
        SamplingParams(top_k=1, temperature=1.0).is_greedy
        and SamplingParams(temperature=0).is_greedy
    )


def test_add_request_refusals(llama) -> None:
    engine = make_engine(llama, max_model_len=32)
    cases = [
        ([], SamplingParams(), "prompt"),
        (list(range(3, 35)), SamplingParams(), "input_tokens"),  # 32 tokens: no room left
        ([5, VOCAB], SamplingParams(), "prompt"),
        ([5, -1], SamplingParams(), "prompt"),
        ([5], SamplingParams(top_p=0), "top_p"),
    ]
    for prompt, params, field in cases:
        with pytest.raises(InvalidParameter) as err:
            engine.add_request("r", prompt, params)
        assert err.value.field == field
    with pytest.raises(InvalidParameter) as err:
        engine.add_request("", [5], SamplingParams())
    assert err.value.field == "request_id"
    engine.add_request("r", list(range(3, 34)), SamplingParams())  # 31 tokens fit
    with pytest.raises(RequestAlreadyExists):
        engine.add_request("r", [5], SamplingParams())
    assert engine.stats().num_waiting == 1


def test_config_errors(llama, tmp_path) -> None:
    with pytest.raises(ValueError, match="max_position_embeddings"):
        make_engine(llama, max_model_len=1024)
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        make_engine(llama, chunked=False, max_num_batched_tokens=64)
    with pytest.raises(ValueError, match="KV cache holds 40 tokens"):
        make_engine(llama, num_blocks=10, block_size=4, max_model_len=64)
    with pytest.raises(ValueError, match="dtype"):
        ModelConfig(str(llama.path), dtype="int8")
    with pytest.raises(ValueError):
        CacheConfig(block_size=0)


def test_unsupported_architecture_lists_the_supported_ones(llama, tmp_path) -> None:
    shutil.copytree(llama.path, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModel, match="LlamaForCausalLM") as err:
        LLMEngine(EngineConfig(ModelConfig(str(tmp_path / "m"), model_impl="native"), device="cpu"))
    assert "GPT2LMHeadModel" in str(err.value)


def test_unknown_rope_scaling_is_refused(llama, tmp_path) -> None:
    shutil.copytree(llama.path, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModel, match="yarn"):
        LLMEngine(EngineConfig(ModelConfig(str(tmp_path / "m"), model_impl="native"), device="cpu"))


def test_auto_falls_back_to_transformers_when_native_refuses(llama, tmp_path) -> None:
    shutil.copytree(llama.path, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    engine = LLMEngine(EngineConfig(ModelConfig(str(tmp_path / "m")), device="cpu"))
    assert type(engine.model).__name__ == "TransformersForCausalLM"
