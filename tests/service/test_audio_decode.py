"""Audio decoding in the service (PyAV + soxr) and timestamp segmentation."""

from __future__ import annotations

import io

import numpy as np
import pytest

from service.audio.decode import decode_audio
from service.audio.segments import split_window
from service.errors import InvalidArgument
from tests.audio_samples import FORMATS, encode, synthetic

LIMIT = 25 << 20


@pytest.mark.parametrize("container", list(FORMATS))
def test_every_container_decodes_to_16k_mono(container) -> None:
    audio = synthetic(2.0)
    data, name = encode(audio, container)
    decoded = decode_audio(data, name, LIMIT)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert len(decoded) / 16_000 == pytest.approx(2.0, abs=0.15)  # AAC adds priming
    if container in ("wav", "flac"):  # lossless: the same samples
        np.testing.assert_allclose(decoded, audio, atol=1e-4)


def test_stereo_44k_is_downmixed_and_resampled() -> None:
    import av

    t = np.arange(44_100) / 44_100
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="wav") as output:
        stream = output.add_stream("pcm_s16le", rate=44_100, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            np.stack([tone, tone], axis=1).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = 44_100
        for packet in stream.encode(frame):
            output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    decoded = decode_audio(buffer.getvalue(), "stereo.wav", LIMIT)
    assert len(decoded) == pytest.approx(16_000, abs=32)
    spectrum = np.abs(np.fft.rfft(decoded))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s: bin = Hz


@pytest.mark.parametrize(
    "data,name,needle",
    [
        (b"this is not audio at all" * 40, "notes.txt", "notes.txt"),
        (b"", "empty.wav", "empty"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "truncated.wav", "truncated.wav"),
    ],
)
def test_undecodable_bytes_name_the_file(data, name, needle) -> None:
    with pytest.raises(InvalidArgument) as error:
        decode_audio(data, name, LIMIT)
    assert error.value.field == "file" and needle in error.value.message


def test_size_limit() -> None:
    with pytest.raises(InvalidArgument, match="Maximum file size exceeded") as error:
        decode_audio(b"\0" * 2048, "a.wav", 1024)
    assert error.value.field == "file"


TB = 1000  # timestamp_begin of these examples: <|0.00|>


def test_segments_split_at_timestamp_pairs_and_resume_at_the_last() -> None:
    tokens = [TB, 5, 6, TB + 50, TB + 50, 7, TB + 120, TB + 130, 8, 9]  # unfinished tail
    segments, advance = split_window(tokens, seek=0, window_frames=3000, timestamp_begin=TB)
    assert [(s.start, s.end) for s in segments] == [(0.0, 1.0), (1.0, 2.4)]
    assert segments[1].token_ids == [TB + 50, 7, TB + 120, TB + 130]
    assert advance == 2 * 120  # frames: seek to the last complete segment's end


def test_single_timestamp_ending_completes_the_window() -> None:
    tokens = [TB + 10, 5, TB + 40, TB + 40, 6, TB + 90]
    segments, advance = split_window(tokens, seek=3000, window_frames=1800, timestamp_begin=TB)
    assert [(s.start, s.end) for s in segments] == [(30.2, 30.8), (30.8, 31.8)]
    assert advance == 1800


def test_no_pairs_is_one_segment_over_the_window() -> None:
    segments, advance = split_window([TB, 5, 6], seek=0, window_frames=3000, timestamp_begin=TB)
    assert len(segments) == 1 and segments[0].end == pytest.approx(30.0) and advance == 3000
