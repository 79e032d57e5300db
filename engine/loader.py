"""Loading a Hugging Face checkpoint from a local directory: config.json, EOS ids and
safetensors weights (single file or sharded via model.safetensors.index.json), into the
native model for its architecture or the transformers fallback (ModelConfig.model_impl)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import torch
from safetensors import safe_open
from torch import nn
from tqdm import tqdm

from engine.attention.base import AttentionBackend
from engine.errors import UnsupportedModel
from engine.models import fallback_class, model_class, use_native
from engine.models.packed_linear import pack_linears

log = structlog.get_logger(__name__)

INDEX_FILE = "model.safetensors.index.json"
# config.json keys naming the longest sequence, by family (GPT-2 says n_positions,
# Whisper's decoder max_target_positions).
_MAX_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_target_positions")


@dataclass(frozen=True)
class Checkpoint:
    model_dir: Path
    config: dict[str, Any]  # config.json
    architecture: str  # architectures[0]
    eos_token_ids: tuple[int, ...]  # generation_config.json, else config.json
    dtype_name: str | None  # the checkpoint's torch_dtype / dtype, if stated

    @property
    def max_position_embeddings(self) -> int:
        for key in _MAX_POSITION_KEYS:
            if self.config.get(key):
                return int(self.config[key])
        return 2048


def read_checkpoint(model_dir: str | Path) -> Checkpoint:
    path = Path(model_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path}: no config.json (not a model directory)")
    config = json.loads(config_file.read_text())
    architectures = config.get("architectures") or []
    if not architectures:
        raise ValueError(f"{config_file}: no `architectures` entry")
    return Checkpoint(
        model_dir=path,
        config=config,
        architecture=architectures[0],
        eos_token_ids=_eos_token_ids(path, config),
        dtype_name=config.get("torch_dtype") or config.get("dtype"),
    )


def _eos_token_ids(path: Path, config: dict[str, Any]) -> tuple[int, ...]:
    eos = None
    generation_config = path / "generation_config.json"
    if generation_config.is_file():
        eos = json.loads(generation_config.read_text()).get("eos_token_id")
    if eos is None:
        eos = config.get("eos_token_id")
    if eos is None:
        return ()
    return tuple(int(e) for e in eos) if isinstance(eos, list) else (int(eos),)


def load_model(
    checkpoint: Checkpoint,
    backend: AttentionBackend,
    dtype: torch.dtype,
    device: torch.device,
    model_impl: str = "auto",
) -> nn.Module:
    """The native model for the architecture, or the transformers fallback, per
    `model_impl` (see ModelConfig.model_impl)."""
    started = time.monotonic()
    native = use_native(checkpoint.architecture, model_impl)
    model = None
    if native:
        try:
            model = _load_native(checkpoint, backend, dtype, device)
        except UnsupportedModel as exc:
            if model_impl != "auto":
                raise
            # e.g. a rope scaling type the native code lacks: transformers may serve it.
            log.warning(
                "native implementation refused the checkpoint; using transformers", reason=str(exc)
            )
            native = False
    if model is None:
        model = fallback_class().load(checkpoint.model_dir, backend, dtype, device)
    num_params = sum(p.numel() for p in model.parameters())
    log.info(
        "model loaded",
        architecture=checkpoint.architecture,
        impl="native" if native else "transformers",
        params=num_params,
        dtype=str(dtype).removeprefix("torch."),
        device=str(device),
        seconds=round(time.monotonic() - started, 2),
    )
    if native:
        pack_linears(model)
    return model


def _load_native(
    checkpoint: Checkpoint, backend: AttentionBackend, dtype: torch.dtype, device: torch.device
) -> nn.Module:
    """Build the model without initialising it (meta device), then fill it from disk."""
    cls = model_class(checkpoint.architecture)
    with torch.device("meta"):
        model = cls(checkpoint.config, backend, dtype)
    model = model.to_empty(device=device).eval().requires_grad_(False)
    loaded = model.load_weights(_iter_tensors(safetensors_files(checkpoint.model_dir)))
    missing = sorted(set(dict(model.named_parameters())) - loaded)
    if missing:
        raise ValueError(
            f"{checkpoint.model_dir}: weights missing from the checkpoint: {missing[:8]}"
        )
    return model


def safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights")
    return files


def _iter_tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    total = 0
    for path in files:  # headers only: cheap
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            total += len(handle.keys())
    with tqdm(total=total, desc="Loading weights", unit="tensor", leave=False) as bar:
        for path in files:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                for name in handle.keys():  # noqa: SIM118 - not a dict
                    yield name, handle.get_tensor(name)
                    bar.update()
