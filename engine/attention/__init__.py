"""Attention backends: a registry of name -> "module:Class", imported on first use so a
backend's library (flashinfer, CUDA-only) is imported only when that backend is chosen."""

from __future__ import annotations

import importlib

import torch

from engine.attention.base import AttentionBackend, AttentionMetadata, PrefillSpan

_BACKENDS: dict[str, str] = {
    "torch_sdpa": "engine.attention.torch_sdpa:TorchSDPABackend",
}


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def default_backend(device: torch.device) -> str:
    """The backend for a device. (flashinfer will take CUDA once it exists.)"""
    return "torch_sdpa"


def create_backend(name: str) -> AttentionBackend:
    target = _BACKENDS.get(name)
    if target is None:
        raise ValueError(f"unknown attention backend {name!r}; available: {available_backends()}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()


__all__ = [
    "AttentionBackend",
    "AttentionMetadata",
    "PrefillSpan",
    "available_backends",
    "create_backend",
    "default_backend",
]
