"""Native Qwen2 (per-layer sliding window; tied embeddings) and Qwen3 (q/k norms, explicit
head_dim) against transformers in float32: logits of a batched prefill and of chunked
prefill + paged decode, and greedy tokens under staggered continuous batching."""

from __future__ import annotations

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

from engine import SamplingParams, UnsupportedModel
from engine.models.qwen2 import Qwen2ForCausalLM, layer_sliding_windows
from engine.models.qwen3 import Qwen3ForCausalLM

KINDS = ["qwen2", "qwen2_tied", "qwen3"]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyModel]:
    root = tmp_path_factory.mktemp("qwen")
    return {kind: build_tiny(kind, root, seed=i) for i, kind in enumerate(KINDS)}


@pytest.mark.parametrize("kind", KINDS)
def test_batched_prefill_logits_match_transformers(qwen, kind: str) -> None:
    model = qwen[kind]
    engine = make_engine_with(model)
    assert isinstance(engine.model, Qwen3ForCausalLM if kind == "qwen3" else Qwen2ForCausalLM)
    batch = prompts(5, seed=11, min_len=1, max_len=30)
    for i, prompt in enumerate(batch):
        engine.add_request(str(i), prompt, SamplingParams(temperature=0, max_tokens=100))
    recorded = step_logits(engine)
    assert len(recorded) == len(batch)  # one step, one forward for all prompts
    for rid, start, chunk in recorded:
        assert start == 0
        torch.testing.assert_close(chunk, hf_logits(model, batch[int(rid)]), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_prefill_and_paged_decode_logits_match(qwen, kind: str) -> None:
    """7-token steps with 4-token blocks; qwen2's window (8, layer 1 only) crosses blocks."""
    engine = make_engine_with(qwen[kind], max_num_batched_tokens=7)
    assert chunked_logits_match(engine, qwen[kind]) > 20


@pytest.mark.parametrize("kind", KINDS)
def test_staggered_continuous_batching_matches_generate(qwen, kind: str) -> None:
    """A 16-token budget: later prompts are chunked while earlier ones decode."""
    staggered_greedy_matches(make_engine_with(qwen[kind], max_num_batched_tokens=16), qwen[kind])


def test_qwen2_windows_are_per_layer(qwen) -> None:
    engine = make_engine_with(qwen["qwen2"])
    windows = [layer.self_attn.sliding_window for layer in engine.model.layers]
    assert windows == [None, 8]
    assert engine.model.layers[0].self_attn.qkv_proj.bias is not None
    assert engine.model.layers[0].self_attn.o_proj.bias is None
    assert (
        engine.model.lm_head is not None
        and make_engine_with(qwen["qwen2_tied"]).model.lm_head is None
    )


def test_layer_sliding_windows_follow_transformers_rules() -> None:
    base = {"num_hidden_layers": 3, "sliding_window": 16, "max_window_layers": 1}
    assert layer_sliding_windows(base) == (None, None, None)  # use_sliding_window unset
    on = {**base, "use_sliding_window": True}
    assert layer_sliding_windows(on) == (None, 16, 16)
    explicit = {**on, "layer_types": ["sliding_attention", "full_attention", "full_attention"]}
    assert layer_sliding_windows(explicit) == (16, None, None)
    with pytest.raises(UnsupportedModel, match="layer_types"):
        layer_sliding_windows({**on, "layer_types": ["chunked_attention"] * 3})


def test_qwen3_checkpoint_has_norms_and_wide_heads(qwen) -> None:
    attn = make_engine_with(qwen["qwen3"]).model.layers[0].self_attn
    assert attn.head_dim == 32 and attn.q_norm is not None and attn.k_norm is not None
    hf_attn = qwen["qwen3"].hf.model.layers[0].self_attn
    torch.testing.assert_close(attn.q_norm.weight, hf_attn.q_norm.weight)  # perturbed, not 1
