"""The bridge's tensor encodings (numpy only): base64 / raw bytes in float32, float16,
bfloat16 and either byte order; Cohere's int8 / uint8 / binary / ubinary."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from protoserve.pooling.v1 import pooling_pb2
from rest_bridge import tensors
from rest_bridge.errors import APIError

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


def test_fp8_is_refused_naming_the_field() -> None:
    with pytest.raises(APIError) as error:
        tensors.to_bytes(VALUES, "fp8_e4m3", "little")
    assert error.value.status == 400 and error.value.param == "embed_dtype"


def test_cohere_quantisations() -> None:
    assert tensors.int8(VALUES) == [64, -127, 32, 127, -1, 127, -38, 89]
    assert tensors.uint8(VALUES) == [191, 0, 159, 255, 127, 255, 89, 217]
    # signs: + - + + - + - +  -> 0b10110101
    assert tensors.ubinary(VALUES) == [0b10110101]
    assert tensors.binary(VALUES) == [0b10110101 - 128]
