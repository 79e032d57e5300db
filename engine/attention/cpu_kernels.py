"""The C kernels of csrc/ for the CPU attention backend, built and loaded by engine.native
(compiled on first use, cached; KernelBuildError when this machine cannot build them, and
callers fall back to SDPA)."""

from __future__ import annotations

import ctypes
from pathlib import Path

from engine.native import KernelBuildError, load_library

__all__ = ["SOURCE", "DecodeArgs", "KernelBuildError", "load_kernels"]

SOURCE = Path(__file__).parent / "csrc" / "paged_decode.c"
_p = ctypes.c_void_p
_i64 = ctypes.c_int64


class DecodeArgs(ctypes.Structure):
    """Mirror of DecodeArgs in paged_decode.c (field order and types must match)."""

    _fields_ = [
        ("q", _p),
        ("q_row_stride", _i64),
        ("k_cache", _p),
        ("v_cache", _p),
        ("rows", _p),
        ("block_tables", _p),
        ("bt_stride", _i64),
        ("context_lens", _p),
        ("out", _p),
        ("num_heads", ctypes.c_int),
        ("num_kv_heads", ctypes.c_int),
        ("head_dim", ctypes.c_int),
        ("block_size", ctypes.c_int),
        ("window", ctypes.c_int),
        ("scale", ctypes.c_float),
    ]


def load_kernels() -> ctypes.CDLL:
    """The loaded kernel library, its functions declared."""
    lib = load_library(SOURCE)
    lib.paged_decode_f32.argtypes = [ctypes.POINTER(DecodeArgs), _i64, ctypes.c_int]
    lib.paged_decode_f32.restype = None
    lib.write_kv_f32.argtypes = [_p, _i64, _p, _i64, _p, _i64, _p, _p, _i64]
    lib.write_kv_f32.restype = None
    return lib
