"""Helpers for the engine tests: tiny random-weight checkpoints, engines, HF references."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

from engine import CacheConfig, EngineConfig, LLMEngine, ModelConfig, RequestOutput, SchedulerConfig

VOCAB = 512
EOS_PROMPT = [11, 42, 97, 5, 230, 17]  # the llama_eos fixture picks an EOS this prompt reaches
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    max_position_embeddings=512,
    initializer_range=0.25,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)


@dataclass
class TinyModel:
    path: Path
    hf: torch.nn.Module  # the transformers model the checkpoint was saved from (float32, eval)


def _save(model: torch.nn.Module, path: Path) -> TinyModel:
    model.eval()
    model.save_pretrained(path, safe_serialization=True)
    return TinyModel(path, model)


def build_model(kind: str, root: Path) -> TinyModel:
    torch.manual_seed({"llama": 1, "llama_tied": 2, "mistral": 3, "llama3_rope": 4}[kind])
    if kind == "mistral":  # sliding window shorter than the test prompts
        config = MistralConfig(**COMMON, num_hidden_layers=2, sliding_window=8, head_dim=16)
        return _save(MistralForCausalLM(config), root / kind)
    extra: dict = {"num_hidden_layers": 2, "tie_word_embeddings": kind == "llama_tied"}
    if kind == "llama_tied":
        extra["num_hidden_layers"] = 3
    if kind == "llama3_rope":
        extra["rope_parameters"] = {
            "rope_type": "llama3",
            "rope_theta": 50000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        }
    return _save(LlamaForCausalLM(LlamaConfig(**COMMON, **extra)), root / kind)


def with_eos(model: TinyModel, eos_token_id: int, dest: Path) -> TinyModel:
    """The same weights, with generation_config.json naming another EOS id."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model.path / name, dest / name)
    (dest / "generation_config.json").write_text(json.dumps({"eos_token_id": eos_token_id}))
    return TinyModel(dest, model.hf)


def make_engine(
    model: TinyModel,
    *,
    max_model_len: int | None = None,
    block_size: int = 4,
    num_blocks: int | None = None,
    max_num_seqs: int = 32,
    max_num_batched_tokens: int = 512,
    chunked: bool = True,
    seed: int = 0,
    prefix_caching: bool = True,
    policy: str = "fcfs",
) -> LLMEngine:
    return LLMEngine(
        EngineConfig(
            model=ModelConfig(str(model.path), max_model_len=max_model_len, seed=seed),
            cache=CacheConfig(
                block_size=block_size, num_blocks=num_blocks, enable_prefix_caching=prefix_caching
            ),
            scheduler=SchedulerConfig(
                max_num_seqs=max_num_seqs,
                max_num_batched_tokens=max_num_batched_tokens,
                enable_chunked_prefill=chunked,
                policy=policy,
            ),
            device="cpu",
        )
    )


def hf_greedy(
    model: TinyModel, prompt: list[int], max_new_tokens: int, eos_token_id: int | None = None
) -> list[int]:
    """transformers' own greedy generation, the reference for token parity."""
    config = GenerationConfig(
        do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=0
    )
    with torch.inference_mode():
        out = model.hf.generate(torch.tensor([prompt]), generation_config=config)
    return out[0, len(prompt) :].tolist()


def prompts(count: int, seed: int = 0, min_len: int = 3, max_len: int = 40) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (count,), generator=g).tolist()
    return [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in lengths]


def run_all(engine: LLMEngine, check: bool = True) -> dict[str, list[RequestOutput]]:
    """Step until idle; every request's outputs, checking KV integrity each step."""
    outputs: dict[str, list[RequestOutput]] = {}
    while engine.has_unfinished_requests():
        collect(outputs, engine.step())
        if check:
            engine.check_integrity()
    return outputs


def collect(into: dict[str, list[RequestOutput]], outputs: Iterable[RequestOutput]) -> None:
    for output in outputs:
        into.setdefault(output.request_id, []).append(output)


def tokens(outputs: list[RequestOutput]) -> list[int]:
    return [t for o in outputs for t in o.new_token_ids]
