"""The bridge's tensor encodings (numpy only): base64 / raw bytes in float32, float16,
bfloat16 and either byte order; Cohere's int8 / uint8 / binary / ubinary."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from protoserve.pooling.v1 import pooling_pb2
from rest_bridge import tensors

VALUES = np.array([0.5, -1.0, 0.25, 3.140625, -0.0078125, 1.0, -0.3, 0.7], dtype=np.float32)


def test_array_keeps_the_shape() -> None:
    proto = pooling_pb2.Tensor(shape=[2, 4], values=VALUES.tolist())
    assert tensors.array(proto).shape == (2, 4)
    assert tensors.as_floats(proto)[1] == pytest.approx(VALUES[4:].tolist())


def test_base64_is_little_endian_float32_by_default() -> None:
    decoded = np.frombuffer(base64.b64decode(tensors.to_base64(VALUES)), dtype="<f4")
    assert decoded.tolist() == VALUES.tolist()


@pytest.mark.parametrize("dtype,numpy_dtype", [("float32", "f4"), ("float16", "f2")])
def test_bytes_in_each_byte_order(dtype, numpy_dtype) -> None:
    for order, prefix in (("little", "<"), ("big", ">")):
        raw = tensors.to_bytes(VALUES, dtype, order)
        decoded = np.frombuffer(raw, dtype=prefix + numpy_dtype).astype(np.float32)
        assert decoded == pytest.approx(VALUES, abs=1e-3)


def test_bfloat16_rounds_to_nearest_even() -> None:
    raw = tensors.to_bytes(VALUES, "bfloat16", "little")
    widened = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    assert widened[:4].tolist() == [0.5, -1.0, 0.25, 3.140625]  # exact in bfloat16
    assert widened == pytest.approx(VALUES, rel=4e-3)


_FP8_EDGES = [0.0, -0.0, 1e-9, 2.0**-9, 2.0**-10, 2.0**-17, 3 * 2.0**-18, 447.0, 448.0, 464.0,
              500.0, 57344.0, 60000.0, 61440.0, 1e6, -1e6, float("nan")]  # fmt: skip


@pytest.mark.parametrize(
    "dtype,torch_dtype", [("fp8_e4m3", "float8_e4m3fn"), ("fp8_e5m2", "float8_e5m2")]
)
def test_fp8_bits_equal_torch(dtype, torch_dtype) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.standard_normal(4000) * scale for scale in (1e-3, 0.05, 1.0, 30.0)
    ] + [np.array(_FP8_EDGES)]).astype(np.float32)  # fmt: skip
    expected = torch.from_numpy(values).to(getattr(torch, torch_dtype)).view(torch.uint8).numpy()
    raw = tensors.to_bytes(values, dtype, "big")  # one byte a value: no byte order
    assert raw == tensors.to_bytes(values, dtype, "little") and len(raw) == values.size
    assert np.frombuffer(raw, dtype=np.uint8).tolist() == expected.tolist()


def test_cohere_quantisations() -> None:
    assert tensors.int8(VALUES) == [64, -127, 32, 127, -1, 127, -38, 89]
    assert tensors.uint8(VALUES) == [191, 0, 159, 255, 127, 255, 89, 217]
    # signs: + - + + - + - +  -> 0b10110101
    assert tensors.ubinary(VALUES) == [0b10110101]
    assert tensors.binary(VALUES) == [0b10110101 - 128]
