"""Compute dtypes: `auto` resolution (CPU float32 unless the CPU has fast bf16; CUDA the
checkpoint's own), and bfloat16 / float16 on CPU close to float32 for a native model and
the transformers fallback.

Tolerances, for logits of standard deviation ~2 from these tiny models (2 layers,
hidden 64): bfloat16 (8-bit mantissa) |diff| <= 0.75 max and 0.05 mean; float16 (11-bit)
<= 0.15 max and 0.01 mean; measured: bf16 0.23-0.47 max, 0.02-0.03 mean; fp16 0.02-0.09
max, 0.003-0.005 mean. The greedy token agrees wherever float32's top-2 margin exceeds
the max tolerance."""

from __future__ import annotations

import copy

import pytest
import torch
from engine_helpers import TinyModel, prompts
from parity_helpers import build_tiny, chunked_logits_match, make_engine_with, step_logits

import engine.config
from engine import LLMEngine, ModelConfig, SamplingParams
from engine.config import cpu_has_fast_bf16
from engine.loader import read_checkpoint

TOLERANCE = {"bfloat16": (0.75, 0.05), "float16": (0.15, 0.01)}  # (max, mean) |diff|
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, llama: TinyModel) -> dict[str, TinyModel]:
    return {"llama": llama, "phi3": build_tiny("phi3", tmp_path_factory.mktemp("dtypes"))}


def _prefill_logits(engine: LLMEngine) -> torch.Tensor:
    for i, prompt in enumerate(prompts(5, seed=31, min_len=1, max_len=30)):
        engine.add_request(str(i), prompt, SamplingParams(temperature=0, max_tokens=10))
    return torch.cat([chunk for _, _, chunk in step_logits(engine)])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("kind", ["llama", "phi3"])  # native, transformers fallback
def test_half_precision_on_cpu_is_close_to_float32(models, kind: str, dtype: str) -> None:
    reference = _prefill_logits(make_engine_with(models[kind], dtype="float32"))
    engine = make_engine_with(models[kind], dtype=dtype)
    assert engine.dtype == getattr(torch, dtype)
    assert next(engine.model.parameters()).dtype == engine.dtype
    assert engine.runner.kv_caches[0][0].dtype == engine.dtype
    got = _prefill_logits(engine)
    max_tol, mean_tol = TOLERANCE[dtype]
    diff = (got - reference).abs()
    assert diff.max() <= max_tol and diff.mean() <= mean_tol, (diff.max(), diff.mean())
    top2 = reference.topk(2, dim=-1).values
    clear = top2[:, 0] - top2[:, 1] > max_tol
    assert torch.equal(got.argmax(-1)[clear], reference.argmax(-1)[clear])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_chunked_prefill_and_paged_decode(models, dtype: str) -> None:
    engine = make_engine_with(models["llama"], dtype=dtype, max_num_batched_tokens=7)
    chunked_logits_match(engine, models["llama"], atol=TOLERANCE[dtype][0])


def test_auto_is_float32_on_this_cpu(models, tmp_path) -> None:
    """This CPU (AVX512-BF16, no AMX) computes a bfloat16 checkpoint in float32."""
    if cpu_has_fast_bf16():
        pytest.skip("this CPU has AMX: auto picks bfloat16 for 16-bit checkpoints")
    copy.deepcopy(models["llama"].hf).to(torch.bfloat16).save_pretrained(tmp_path)
    assert read_checkpoint(tmp_path).dtype_name == "bfloat16"
    engine = make_engine_with(TinyModel(tmp_path, models["llama"].hf))
    assert engine.dtype == torch.float32 and engine.runner.kv_caches[0][0].dtype == torch.float32


def test_auto_resolution(monkeypatch) -> None:
    auto = ModelConfig("m")
    for stated, cuda in [("bfloat16", torch.bfloat16), ("float16", torch.float16),
                         ("float32", torch.float32), (None, torch.float32)]:  # fmt: skip
        assert auto.torch_dtype(CUDA, stated) == cuda
    monkeypatch.setattr(engine.config, "cpu_has_fast_bf16", lambda: True)
    assert auto.torch_dtype(CPU, "bfloat16") == torch.bfloat16
    assert auto.torch_dtype(CPU, "float16") == torch.bfloat16  # fp16 matmuls are slow on CPU
    assert auto.torch_dtype(CPU, "float32") == torch.float32
    monkeypatch.setattr(engine.config, "cpu_has_fast_bf16", lambda: False)
    assert auto.torch_dtype(CPU, "bfloat16") == torch.float32
    assert ModelConfig("m", dtype="bfloat16").torch_dtype(CPU, "float32") == torch.bfloat16
