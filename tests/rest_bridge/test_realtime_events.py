"""The realtime WebSocket's event parsing (no server)."""

from __future__ import annotations

import base64

import pytest

from protoserve.audio.v1 import audio_pb2 as pb
from rest_bridge.realtime_events import decode_pcm, session_fields, stream_config


def test_flat_and_nested_session_fields() -> None:
    assert session_fields({"type": "session.update", "model": "whisper"}) == {"model": "whisper"}
    nested = {
        "type": "session.update",
        "session": {
            "input_audio_transcription": {"model": "whisper", "language": "en"},
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}},
        },
    }
    assert session_fields(nested) == {"model": "whisper", "language": "en", "sample_rate": 24000}
    config = stream_config(session_fields(nested))
    assert config.sample_rate_hz == 24000 and config.encoding == pb.AUDIO_ENCODING_PCM16_LE
    with pytest.raises(ValueError, match="pcm16"):
        stream_config({"model": "whisper", "input_audio_format": "g711_ulaw"})


def test_audio_chunks() -> None:
    assert decode_pcm(base64.b64encode(b"\x01\x00\x02\x00").decode(), 1024) == b"\x01\x00\x02\x00"
    assert "base64" in decode_pcm("@@@@", 1024)
    assert "even" in decode_pcm(base64.b64encode(b"\x01").decode(), 1024)
    assert "at most" in decode_pcm(base64.b64encode(b"\0" * 2048).decode(), 1024)
    assert "non-empty" in decode_pcm(None, 1024)
