"""The transformers fallback (model_impl "auto" for unregistered architectures, or
"transformers"): Phi3, Gemma and GPT-NeoX (partial rotary, no GQA), which have no native
implementation, and Llama forced through it; float32 logits vs plain transformers in a
batched prefill and through chunked prefill + paged decode, greedy tokens under
staggered continuous batching; clear UnsupportedModel errors at load time."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from engine_helpers import TinyModel, prompts
from parity_helpers import (
    ATOL,
    build_tiny,
    chunked_logits_match,
    hf_logits,
    make_engine_with,
    staggered_greedy_matches,
    step_logits,
)

from engine import ModelConfig, SamplingParams, UnsupportedModel
from engine.models.llama import LlamaForCausalLM
from engine.models.transformers_fallback import TransformersForCausalLM

FALLBACK_ONLY = ["phi3", "gemma", "gpt_neox"]
KINDS = [*FALLBACK_ONLY, "llama"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, llama: TinyModel) -> dict[str, TinyModel]:
    root = tmp_path_factory.mktemp("fallback")
    built = {kind: build_tiny(kind, root, seed=10 + i) for i, kind in enumerate(FALLBACK_ONLY)}
    return {**built, "llama": llama}


def _engine(model: TinyModel, kind: str, **kwargs):  # noqa: ANN202
    engine = make_engine_with(
        model, model_impl="auto" if kind != "llama" else "transformers", **kwargs
    )
    assert isinstance(engine.model, TransformersForCausalLM)
    return engine


@pytest.mark.parametrize("kind", KINDS)
def test_batched_prefill_logits_match_transformers(models, kind: str) -> None:
    model = models[kind]
    engine = _engine(model, kind)
    batch = prompts(5, seed=21, min_len=1, max_len=30)
    for i, prompt in enumerate(batch):
        engine.add_request(str(i), prompt, SamplingParams(temperature=0, max_tokens=100))
    recorded = step_logits(engine)
    assert len(recorded) == len(batch)  # one forward for the whole flattened batch
    for rid, _, chunk in recorded:
        torch.testing.assert_close(chunk, hf_logits(model, batch[int(rid)]), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_prefill_and_paged_decode_logits_match(models, kind: str) -> None:
    engine = _engine(models[kind], kind, max_num_batched_tokens=7)
    assert chunked_logits_match(engine, models[kind]) > 20


@pytest.mark.parametrize("kind", KINDS)
def test_staggered_continuous_batching_matches_generate(models, kind: str) -> None:
    staggered_greedy_matches(_engine(models[kind], kind, max_num_batched_tokens=16), models[kind])


def test_layout_comes_from_the_attention_calls(models) -> None:
    neox = _engine(models["gpt_neox"], "gpt_neox").model
    assert (neox.num_layers, neox.num_kv_heads, neox.head_dim, neox.vocab_size) == (2, 4, 16, 512)
    gemma = _engine(models["gemma"], "gemma").model
    assert (gemma.num_kv_heads, gemma.head_dim, gemma.max_position_embeddings) == (2, 16, 512)


def test_learned_positions_see_each_tokens_own_position(tmp_path) -> None:
    """GPT-2 adds a position embedding per token: the packed batch's position_ids must be
    every sequence's own positions; its n_positions bounds max_model_len."""
    model = build_tiny("gpt2", tmp_path)
    engine = make_engine_with(model, max_num_batched_tokens=7)
    assert engine.max_model_len == 512
    assert chunked_logits_match(engine, model) > 20


def test_model_impl_chooses_the_implementation(models) -> None:
    assert isinstance(make_engine_with(models["llama"]).model, LlamaForCausalLM)  # auto
    assert isinstance(
        make_engine_with(models["llama"], model_impl="native").model, LlamaForCausalLM
    )
    with pytest.raises(UnsupportedModel, match="Phi3ForCausalLM.*no native implementation"):
        make_engine_with(models["phi3"], model_impl="native")
    with pytest.raises(ValueError, match="model_impl"):
        ModelConfig("m", model_impl="vllm")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("falcon", "FalconForCausalLM cannot use a custom attention function"),
        ("gemma2_softcap", "Gemma2ForCausalLM: attention: layer 0 passes `softcap`"),
    ],
)
def test_attention_the_backends_cannot_compute_fails_at_load(tmp_path, kind, message) -> None:
    model = build_tiny(kind, tmp_path)
    with pytest.raises(UnsupportedModel, match=message):
        make_engine_with(model)


def test_architecture_transformers_does_not_serve_fails_at_load(models, tmp_path) -> None:
    shutil.copytree(models["phi3"].path, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["architectures"] = ["FancyNewForCausalLM"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModel, match="'FancyNewForCausalLM'.*Phi3ForCausalLM"):
        make_engine_with(TinyModel(tmp_path / "m", models["phi3"].hf))
