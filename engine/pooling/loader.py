"""Loading a pooling model: the native encoder for its architecture (BERT family), else
the transformers fallback (ModelConfig.model_impl decides, as for generate models)."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from pathlib import Path

import structlog
import torch
from safetensors import safe_open
from torch import nn

from engine.errors import UnsupportedModel
from engine.loader import Checkpoint, safetensors_files
from engine.models.packed_linear import pack_linears

log = structlog.get_logger(__name__)

_BERT = "engine.models.bert:BertEncoder"
_NATIVE: dict[str, str] = {
    name: _BERT
    for family in ("Bert", "Roberta", "XLMRoberta")
    for name in (f"{family}Model", f"{family}ForSequenceClassification", f"{family}ForMaskedLM")
}
_FALLBACK = "engine.models.transformers_pooling:TransformersPoolingModel"


def load_pooling_model(
    checkpoint: Checkpoint,
    dtype: torch.dtype,
    device: torch.device,
    model_impl: str,
    classify: bool,
) -> nn.Module:
    started = time.monotonic()
    native = model_impl == "native" or (model_impl == "auto" and checkpoint.architecture in _NATIVE)
    model = None
    if native:
        try:
            model = _load_native(checkpoint, dtype, device)
        except UnsupportedModel as exc:
            if model_impl != "auto":
                raise
            log.warning(
                "native encoder refused the checkpoint; using transformers", reason=str(exc)
            )
            native = False
    if model is None:
        model = _import(_FALLBACK).load(checkpoint.model_dir, dtype, device, classify)
    log.info(
        "pooling model loaded",
        architecture=checkpoint.architecture,
        impl="native" if native else "transformers",
        params=sum(p.numel() for p in model.parameters()),
        dtype=str(dtype).removeprefix("torch."),
        seconds=round(time.monotonic() - started, 2),
    )
    if native:
        pack_linears(model)
    return model


def _load_native(checkpoint: Checkpoint, dtype: torch.dtype, device: torch.device) -> nn.Module:
    target = _NATIVE.get(checkpoint.architecture)
    if target is None:
        raise UnsupportedModel(
            f"architecture {checkpoint.architecture!r} has no native pooling implementation; "
            f"native: {', '.join(sorted(_NATIVE))}"
        )
    with torch.device("meta"):
        model = _import(target)(checkpoint.config, dtype)
    model = model.to_empty(device=device).eval().requires_grad_(False)
    loaded = model.load_weights(_tensors(safetensors_files(checkpoint.model_dir)))
    missing = sorted(set(dict(model.named_parameters())) - loaded)
    if missing:
        raise ValueError(
            f"{checkpoint.model_dir}: weights missing from the checkpoint: {missing[:8]}"
        )
    return model


def _tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    for path in files:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for name in handle.keys():  # noqa: SIM118 - not a dict
                yield name, handle.get_tensor(name)


def _import(target: str):
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
