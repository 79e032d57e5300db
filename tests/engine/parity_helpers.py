"""Helpers for the architecture tests (Qwen, transformers fallback, dtypes): tiny random
checkpoints of more architectures, engines with a model_impl / dtype, and logits parity
with the transformers model the checkpoint was saved from."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from engine_helpers import COMMON, TinyModel, hf_greedy, prompts, run_all, tokens

from engine import (
    CacheConfig,
    EngineConfig,
    LLMEngine,
    ModelConfig,
    SamplingParams,
    SchedulerConfig,
)

ATOL = 1e-4  # float32 logits vs transformers
GREEDY = SamplingParams(temperature=0.0, max_tokens=12)

# kind -> (config class, model class, config arguments beyond COMMON)
_ARCHITECTURES: dict[str, tuple[str, str, dict]] = {
    # Window 8 on layer 1 only (max_window_layers=1): per-layer sliding windows.
    "qwen2": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(use_sliding_window=True, sliding_window=8, max_window_layers=1),
    ),
    "qwen2_tied": ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=True)),
    # head_dim 32 != hidden / heads = 16
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=32, rope_theta=1e6)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(sliding_window=8)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(head_dim=16)),
    "gpt_neox": (
        "GPTNeoXConfig",
        "GPTNeoXForCausalLM",
        dict(rotary_pct=0.5, num_key_value_heads=None, tie_word_embeddings=False),
    ),
    # Learned absolute positions; config.json says n_positions, not max_position_embeddings.
    "gpt2": (
        "GPT2Config",
        "GPT2LMHeadModel",
        dict(num_key_value_heads=None, intermediate_size=None),
    ),
    "gemma2_softcap": ("Gemma2Config", "Gemma2ForCausalLM", dict(head_dim=16)),
    "falcon": ("FalconConfig", "FalconForCausalLM", {}),
}


def build_tiny(kind: str, root: Path, seed: int = 0) -> TinyModel:
    """A 2-layer random checkpoint of `kind` under root/kind, with its transformers model."""
    config_name, model_name, extra = _ARCHITECTURES[kind]
    args = {**COMMON, "num_hidden_layers": 2, **extra}
    args = {k: v for k, v in args.items() if v is not None}
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(**args)
    model = getattr(transformers, model_name)(config).eval()
    _perturb_norms_and_biases(model)
    path = root / kind
    model.save_pretrained(path, safe_serialization=True)
    return TinyModel(path, model)


def _perturb_norms_and_biases(model: torch.nn.Module) -> None:
    """transformers initialises norms to 1 (or 0) and biases to 0; random values make
    parity depend on loading them."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                param.add_(torch.randn_like(param) * 0.1)


def make_engine_with(
    model: TinyModel,
    *,
    model_impl: str = "auto",
    dtype: str = "auto",
    block_size: int = 4,
    num_blocks: int = 128,  # enough for these tests; a small pool builds fast
    max_num_batched_tokens: int = 512,
) -> LLMEngine:
    return LLMEngine(
        EngineConfig(
            model=ModelConfig(str(model.path), dtype=dtype, model_impl=model_impl),
            cache=CacheConfig(block_size=block_size, num_blocks=num_blocks),
            scheduler=SchedulerConfig(max_num_batched_tokens=max_num_batched_tokens),
            device="cpu",
        )
    )


def step_logits(engine: LLMEngine) -> list[tuple[str, int, torch.Tensor]]:
    """One engine step by hand, keeping the logits of every row: (id, start, logits)."""
    batch = engine.scheduler.schedule()
    inputs = engine.runner.prepare_inputs(batch)
    with torch.inference_mode():
        hidden = engine.model(
            inputs.input_ids, inputs.positions, inputs.attn_metadata, engine.runner.kv_caches
        )
        logits = engine.model.compute_logits(hidden).float()
    rows, row = [], 0
    for seq in batch.sequences:
        rows.append((seq.request_id, seq.start_position, logits[row : row + seq.num_new_tokens]))
        row += seq.num_new_tokens
    last = {rid: chunk[-1] for rid, _, chunk in rows}
    sampled = [int(last[s.request_id].argmax()) for s in batch.sampling_sequences]
    engine.scheduler.update_from_output(batch, sampled)
    return rows


def hf_logits(model: TinyModel, token_ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model.hf(torch.tensor([token_ids])).logits[0].float()


def chunked_logits_match(engine: LLMEngine, model: TinyModel, atol: float = ATOL) -> int:
    """Three prompts through 7-token steps (chunks, decodes batched with chunks); every
    row's logits vs transformers on the whole sequence. Returns the rows checked."""
    batch = prompts(3, seed=12, min_len=9, max_len=20)
    for i, prompt in enumerate(batch):
        engine.add_request(str(i), prompt, SamplingParams(temperature=0, max_tokens=100))
    recorded = []
    for _ in range(14):
        recorded += step_logits(engine)
    assert any(start > 0 and chunk.shape[0] > 1 for _, start, chunk in recorded)  # a chunk
    assert any(chunk.shape[0] == 1 for _, _, chunk in recorded)  # decodes
    full = {}
    for rid in map(str, range(len(batch))):
        request = engine.scheduler.get_request(rid)
        full[rid] = hf_logits(model, request.prompt_token_ids + request.output_token_ids)
    for rid, start, chunk in recorded:
        expected = full[rid][start : start + chunk.shape[0]]
        torch.testing.assert_close(chunk, expected, atol=atol, rtol=0)
    return len(recorded)


def staggered_greedy_matches(engine: LLMEngine, model: TinyModel, count: int = 6) -> None:
    """Request k joins the running batch after k steps; each one's greedy tokens equal
    transformers' generate on it alone (both stop at the checkpoint's EOS)."""
    (eos,) = engine.eos_token_ids
    batch = prompts(count, seed=3, min_len=2, max_len=30)
    results: dict = {}
    for k, prompt in enumerate(batch):
        engine.add_request(str(k), prompt, GREEDY)
        for output in engine.step():
            results.setdefault(output.request_id, []).append(output)
    for rid, outs in run_all(engine).items():
        results.setdefault(rid, []).extend(outs)
    for k, prompt in enumerate(batch):
        expected = hf_greedy(model, prompt, GREEDY.max_tokens, eos_token_id=eos)
        assert tokens(results[str(k)]) == expected, k
    stats = engine.stats()
    assert stats.num_kv_blocks_free == stats.num_kv_blocks_total
