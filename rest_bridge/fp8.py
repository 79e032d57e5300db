"""float32 -> 8-bit float bit patterns (numpy only, as torch converts them):
fp8_e4m3 is OCP E4M3FN (bias 7, no infinities, NaN 0x7F, values past 448 saturate),
fp8_e5m2 is E5M2 (bias 15, IEEE-like: past the largest finite value rounds to infinity).
Round to nearest, ties to even, through a table of every non-negative code's value."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np


@dataclass(frozen=True)
class _Format:
    mantissa_bits: int
    bias: int
    max_code: int  # the largest finite non-negative code
    saturates: bool  # past the largest value: keep it (E4M3FN) or go to infinity (E5M2)
    nan_code: int


FORMATS = {
    "fp8_e4m3": _Format(3, 7, 0x7E, True, 0x7F),
    "fp8_e5m2": _Format(2, 15, 0x7B, False, 0x7F),
}


@cache
def _table(name: str) -> np.ndarray:
    """The value of each code 0..max_code (increasing), plus, for E5M2, infinity's code
    (0x7C) standing at 2**16 so that values rounding past the largest finite go there."""
    fmt = FORMATS[name]
    codes = np.arange(fmt.max_code + 1 + (0 if fmt.saturates else 1))
    exponent, mantissa = codes >> fmt.mantissa_bits, codes & ((1 << fmt.mantissa_bits) - 1)
    fraction = mantissa / (1 << fmt.mantissa_bits)
    normal = (1.0 + fraction) * np.exp2(exponent.astype(np.float64) - fmt.bias)
    subnormal = fraction * np.exp2(1.0 - fmt.bias)
    return np.where(exponent == 0, subnormal, normal)


def to_fp8(values: np.ndarray, name: str) -> np.ndarray:
    """uint8 bit patterns of `values` in the format `name` (a key of FORMATS)."""
    fmt, table = FORMATS[name], _table(name)
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    magnitude = np.abs(flat)
    if fmt.saturates:
        magnitude = np.minimum(magnitude, table[-1])
    upper = np.clip(np.searchsorted(table, magnitude, side="left"), 0, len(table) - 1)
    lower = np.maximum(upper - 1, 0)
    below, above = magnitude - table[lower], table[upper] - magnitude
    take_upper = (above < below) | ((above == below) & (upper % 2 == 0))
    codes = np.where(take_upper, upper, lower)
    codes = np.where(magnitude > table[-1], len(table) - 1, codes)  # E5M2: infinity
    codes = np.where(np.isnan(flat), fmt.nan_code, codes).astype(np.uint8)
    codes |= np.where(np.signbit(flat), np.uint8(0x80), np.uint8(0))
    return codes.reshape(np.shape(values))
