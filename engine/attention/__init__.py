"""Attention backends: a registry of name -> "module:Class", imported on first use so a
backend's dependency (flashinfer, CUDA-only; the C kernel's build) is touched only when that
backend is considered."""

from __future__ import annotations

import functools
import importlib

import structlog
import torch

from engine.attention.base import AttentionBackend, AttentionMetadata, PrefillSpan

log = structlog.get_logger(__name__)

_BACKENDS: dict[str, str] = {
    "torch_sdpa": "engine.attention.torch_sdpa:TorchSDPABackend",
    "cpu_paged": "engine.attention.cpu_paged:CpuPagedBackend",
    "flashinfer": "engine.attention.flashinfer:FlashInferBackend",
}
# What each device type prefers over torch_sdpa (which runs everywhere).
_PREFERRED: dict[str, str] = {"cpu": "cpu_paged", "cuda": "flashinfer"}


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def default_backend(device: torch.device) -> str:
    """flashinfer on CUDA when it imports; cpu_paged on CPU when its kernel builds and
    loads (built here, at engine construction, never at request time); else torch_sdpa,
    with one warning per process saying why."""
    preferred = _PREFERRED.get(device.type)
    if preferred is None:
        return "torch_sdpa"
    reason = _module(preferred).unavailable_reason()
    if reason is not None:
        _warn_fallback(preferred, reason)
        return "torch_sdpa"
    return preferred


def create_backend(name: str) -> AttentionBackend:
    if name not in _BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; available: {available_backends()}")
    return getattr(_module(name), _BACKENDS[name].split(":")[1])()


def _module(name: str):
    return importlib.import_module(_BACKENDS[name].split(":")[0])


@functools.cache
def _warn_fallback(backend: str, reason: str) -> None:
    log.warning("attention backend unavailable, using torch_sdpa", backend=backend, reason=reason)


__all__ = [
    "AttentionBackend",
    "AttentionMetadata",
    "PrefillSpan",
    "available_backends",
    "create_backend",
    "default_backend",
]
