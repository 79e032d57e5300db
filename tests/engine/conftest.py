"""Session fixtures: tiny random-weight checkpoints, built once (helpers: engine_helpers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from engine_helpers import EOS_PROMPT, TinyModel, build_model, hf_greedy, with_eos

MODEL_KINDS = ("llama", "llama_tied", "mistral", "llama3_rope")


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_models(model_root: Path) -> dict[str, TinyModel]:
    torch.set_num_threads(min(torch.get_num_threads(), len(os.sched_getaffinity(0))))
    return {k: build_model(k, model_root) for k in MODEL_KINDS}


@pytest.fixture(scope="session")
def llama(tiny_models: dict[str, TinyModel]) -> TinyModel:
    return tiny_models["llama"]


@pytest.fixture(scope="session")
def llama_eos(llama: TinyModel, model_root: Path) -> TinyModel:
    """The llama weights with an EOS id that greedy decoding of EOS_PROMPT reaches after a
    few tokens (random weights rarely emit the configured EOS on their own)."""
    free_run = hf_greedy(llama, EOS_PROMPT, 12)
    index = next(i for i in range(3, 12) if free_run[i] not in free_run[:i])
    return with_eos(llama, free_run[index], model_root / "llama-eos")
