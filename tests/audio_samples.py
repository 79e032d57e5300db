"""Audio for the speech tests, made at test time: a deterministic synthetic signal (always
available), real speech from espeak-ng (None when it is not installed), and files
encoded with PyAV in any container."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

RATE = 16_000
SENTENCE = (
    "The lighthouse keeper climbed the stairs at dusk and lit the great lamp, "
    "while the ships waited beyond the rocks for the morning tide. "
)

# Container -> (PyAV format, codec, extension, encoder sample rate).
FORMATS = {
    "wav": ("wav", "pcm_s16le", "wav", 16_000),
    "flac": ("flac", "flac", "flac", 16_000),
    "mp3": ("mp3", "libmp3lame", "mp3", 16_000),
    "ogg": ("ogg", "libopus", "ogg", 48_000),
    "m4a": ("mp4", "aac", "m4a", 16_000),
    "webm": ("webm", "libopus", "webm", 48_000),
}


def synthetic(seconds: float, seed: int = 0) -> np.ndarray:
    """Bursts of gliding tones over a little noise: float32 mono at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    bursts = (np.sin(2 * np.pi * 0.7 * t + seed) > -0.2).astype(np.float32)
    tone = np.sin(2 * np.pi * (220 + 80 * np.sin(2 * np.pi * 0.5 * t)) * t)
    return ((0.3 * tone + 0.03 * rng.standard_normal(t.shape)) * bursts).astype(np.float32)


def espeak(text: str = SENTENCE, seconds: float | None = None) -> np.ndarray | None:
    """Spoken English from espeak-ng at 16 kHz (repeated to `seconds`); None without it."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run([binary, "-w", str(path), text], check=True, capture_output=True)
        with wave.open(str(path)) as reader:
            rate = reader.getframerate()
            pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    import soxr

    audio = soxr.resample(pcm.astype(np.float32) / 32768.0, rate, RATE).astype(np.float32)
    if seconds is not None:
        audio = np.tile(audio, int(np.ceil(seconds * RATE / len(audio))))[: int(seconds * RATE)]
    return audio


def speech_or_synthetic(seconds: float) -> np.ndarray:
    audio = espeak(seconds=seconds)
    return audio if audio is not None else synthetic(seconds)


def encode(audio: np.ndarray, container: str) -> tuple[bytes, str]:
    """Encode float32 mono 16 kHz audio with PyAV: (file bytes, file name)."""
    import av

    fmt, codec, extension, rate = FORMATS[container]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as output:
        stream = output.add_stream(codec, rate=rate, layout="mono")
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = RATE
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name, layout="mono", rate=rate
        )
        for resampled in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(resampled):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue(), f"sample.{extension}"


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
