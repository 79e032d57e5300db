"""Checkpoint loading: sharded safetensors, EOS ids, dtype and max_model_len resolution."""

from __future__ import annotations

import json

import pytest
import torch
from engine_helpers import EOS_PROMPT, TinyModel, make_engine, run_all, tokens

from engine import ModelConfig, SamplingParams
from engine.config import cpu_has_fast_bf16
from engine.loader import INDEX_FILE, read_checkpoint, safetensors_files


def test_sharded_checkpoint_loads_to_the_same_model(llama, tmp_path) -> None:
    llama.hf.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="60KB")
    assert (tmp_path / INDEX_FILE).is_file() and len(safetensors_files(tmp_path)) > 1
    params = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    results = []
    for path in (llama.path, tmp_path):
        engine = make_engine(TinyModel(path, llama.hf))
        engine.add_request("r", EOS_PROMPT, params)
        results.append(tokens(run_all(engine)["r"]))
    assert results[0] == results[1] and len(results[0]) == 8


def test_eos_ids_come_from_generation_config_else_config(llama, tmp_path) -> None:
    assert read_checkpoint(llama.path).eos_token_ids == (2,)
    (tmp_path / "config.json").write_text((llama.path / "config.json").read_text())
    assert read_checkpoint(tmp_path).eos_token_ids == (2,)  # config.json only
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [7, 9]}))
    assert read_checkpoint(tmp_path).eos_token_ids == (7, 9)


def test_missing_weights_are_reported(llama, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    (tmp_path / "config.json").write_text((llama.path / "config.json").read_text())
    weights = load_file(llama.path / "model.safetensors")
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="layers.1.mlp.gate_up_proj.weight"):
        make_engine(TinyModel(tmp_path, llama.hf))


def test_dtype_and_length_resolution() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    cpu_auto = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32  # test_dtypes.py
    assert ModelConfig("m").torch_dtype(cpu, "bfloat16") == cpu_auto
    assert ModelConfig("m").torch_dtype(cuda, "bfloat16") == torch.bfloat16
    assert ModelConfig("m").torch_dtype(cuda, "float16") == torch.float16
    assert ModelConfig("m").torch_dtype(cuda, "float32") == torch.float32
    assert ModelConfig("m", dtype="half").torch_dtype(cpu, None) == torch.float16
    assert ModelConfig("m").resolve_max_model_len(512) == 512
    assert ModelConfig("m", max_model_len=100).resolve_max_model_len(512) == 100
    with pytest.raises(ValueError):
        ModelConfig("m", max_model_len=600).resolve_max_model_len(512)
