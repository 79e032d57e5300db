"""Audio bytes -> float32 mono samples at 16 kHz.

Uploads (wav, flac, mp3/mpga, mp4/m4a, ogg, webm, ...) are demuxed and decoded by FFmpeg
through PyAV, down-mixed to mono, then resampled with soxr (high quality). Live streams
send raw PCM16 little-endian mono at 16 kHz (`pcm16_to_float`). Blocking: callers run
these in a worker thread."""

from __future__ import annotations

import io

import numpy as np

from service.errors import InvalidArgument

SAMPLE_RATE = 16_000
MIB = 1 << 20


def check_size(num_bytes: int, max_bytes: int, field: str = "file") -> None:
    if num_bytes > max_bytes:
        raise InvalidArgument(
            f"Maximum file size exceeded: {num_bytes / MIB:.1f} MiB > {max_bytes / MIB:.0f} MiB "
            "(--max-audio-clip-filesize-mb).",
            field,
        )


def decode_audio(data: bytes, filename: str, max_bytes: int) -> np.ndarray:
    """Decode an uploaded file; INVALID_ARGUMENT naming the file when it is too large, not
    audio, or empty."""
    check_size(len(data), max_bytes)
    label = repr(filename) if filename else "the uploaded file"
    if not data:
        raise InvalidArgument(f"Invalid audio file {label}: it is empty.", "file")
    try:
        samples, rate = _decode(data)
    except Exception as exc:  # noqa: BLE001 - FFmpeg's many errors: all "not decodable"
        reason = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)[:200]
        raise InvalidArgument(
            f"Invalid or unsupported audio file {label}: {reason}", "file"
        ) from exc
    if samples.size == 0:
        raise InvalidArgument(f"Invalid audio file {label}: it holds no audio samples.", "file")
    return resample(samples, rate)


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise ValueError("no audio stream")
        stream = streams[0]
        rate = stream.codec_context.sample_rate or SAMPLE_RATE
        mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for out in mono.resample(frame)
        ]
        chunks += [out.to_ndarray().reshape(-1) for out in mono.resample(None)]
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return samples.astype(np.float32, copy=False), rate


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return samples
    import soxr

    return soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Raw PCM16 little-endian mono -> float32 in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
