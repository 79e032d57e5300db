"""Pooled tensors (protobuf `Tensor`) as JSON: nested float lists, base64 or raw bytes of
float32 / float16 / bfloat16 / fp8 (E4M3, E5M2) in a chosen byte order, and Cohere's
int8 / uint8 / binary / ubinary quantisations. numpy only (the bridge never imports torch)."""

from __future__ import annotations

import base64
import sys
from typing import Literal

import numpy as np

from protoserve.pooling.v1 import pooling_pb2
from rest_bridge import fp8

EmbedDtype = Literal["float32", "float16", "bfloat16", "fp8_e4m3", "fp8_e5m2"]
Endianness = Literal["native", "big", "little"]


def array(value: pooling_pb2.Tensor) -> np.ndarray:
    """float32, in the tensor's shape."""
    return np.asarray(value.values, dtype=np.float32).reshape(tuple(value.shape))


def as_floats(value: pooling_pb2.Tensor) -> list:
    """A vector as [float], a matrix as [[float]]."""
    return array(value).tolist()


def to_bytes(values: np.ndarray, embed_dtype: str, endianness: str) -> bytes:
    """The array's raw bytes in embed_dtype and byte order ("native" = this host's; one
    byte per fp8 value has no order)."""
    if embed_dtype in fp8.FORMATS:
        return fp8.to_fp8(values, embed_dtype).tobytes()
    if embed_dtype == "bfloat16":
        out = _bfloat16_bits(values)
    else:
        out = values.astype(np.float16 if embed_dtype == "float16" else np.float32)
    order = sys.byteorder if endianness == "native" else endianness
    if order != sys.byteorder:
        out = out.byteswap()
    return out.tobytes()


def to_base64(values: np.ndarray, embed_dtype: str = "float32", endianness: str = "little"):
    return base64.b64encode(to_bytes(values, embed_dtype, endianness)).decode("ascii")


def _bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


# -- Cohere embedding types --------------------------------------------------------------
def int8(values: np.ndarray) -> list:
    """[-1, 1] -> [-127, 127] (values outside are clipped)."""
    return np.clip(np.rint(values * 127.0), -128, 127).astype(np.int8).tolist()


def uint8(values: np.ndarray) -> list:
    """[-1, 1] -> [0, 255] (values outside are clipped)."""
    return np.clip(np.rint((values + 1.0) * 127.5), 0, 255).astype(np.uint8).tolist()


def ubinary(values: np.ndarray) -> list:
    """Sign bits (1 = positive), packed most significant bit first, 8 per byte."""
    return np.packbits(values > 0, axis=-1).tolist()


def binary(values: np.ndarray) -> list:
    """ubinary bytes shifted into int8 (minus 128)."""
    return (np.packbits(values > 0, axis=-1).astype(np.int16) - 128).astype(np.int8).tolist()
