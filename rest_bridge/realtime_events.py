"""The realtime WebSocket's event fields: session settings (vLLM's flat form or OpenAI's
nested one) -> StreamConfig, base64 audio -> PCM16 bytes, a failed call -> an error code."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import grpc

from protoserve.audio.v1 import audio_pb2 as pb
from rest_bridge.errors import from_grpc


def session_fields(event: dict) -> dict[str, Any]:
    """model, language, prompt, sample_rate and input_audio_format from vLLM's flat event,
    or from OpenAI's nested `session` (its input_audio_transcription and
    audio.input.format.rate); flat fields win."""
    nested: dict[str, Any] = {}
    session = event.get("session")
    if isinstance(session, dict):
        transcription = session.get("input_audio_transcription")
        if isinstance(transcription, dict):
            nested.update(transcription)
        nested.update(session)
        audio_format = _get_path(session, ("audio", "input", "format"))
        if isinstance(audio_format, dict) and "rate" in audio_format:
            nested["sample_rate"] = audio_format["rate"]
    keys = ("model", "language", "prompt", "sample_rate", "input_audio_format")
    merged = {k: nested[k] for k in keys if nested.get(k) is not None}
    merged.update({k: event[k] for k in keys if event.get(k) is not None})
    return merged


def _get_path(data: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def stream_config(fields: dict[str, Any]) -> pb.StreamConfig:
    audio_format = fields.get("input_audio_format", "pcm16")
    if audio_format not in ("pcm16", "audio/pcm"):
        raise ValueError(f"input_audio_format must be pcm16, got {audio_format!r}.")
    rate = fields.get("sample_rate")
    if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0):
        raise ValueError(f"sample_rate must be a positive integer, got {rate!r}.")
    for key in ("language", "prompt"):
        if not isinstance(fields.get(key) or "", str):
            raise ValueError(f"`{key}` must be a string.")
    return pb.StreamConfig(
        model=fields["model"],
        language=fields.get("language") or "",
        prompt=fields.get("prompt") or "",
        sample_rate_hz=rate,
        encoding=pb.AUDIO_ENCODING_PCM16_LE,
    )


def decode_pcm(audio: Any, max_bytes: int) -> bytes | str:
    """The chunk's PCM16 bytes, or why it is refused."""
    if not isinstance(audio, str) or not audio:
        return "`audio` must be a non-empty base64 string of PCM16 samples."
    if len(audio) > (max_bytes // 3 + 1) * 4:
        return f"An audio chunk holds at most {max_bytes} bytes."
    try:
        pcm = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        return "`audio` is not valid base64."
    if not pcm or len(pcm) % 2:
        return "PCM16 audio holds an even, non-zero number of bytes."
    return pcm


def error_code(error: grpc.aio.AioRpcError) -> str:
    """The realtime error code for a failed call: the model, the audio format, the event,
    or processing."""
    if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
        return "model_not_found"
    param = from_grpc(error).param or ""
    if param.startswith(("config.sample_rate", "config.encoding", "audio")):
        return "invalid_audio"
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return "invalid_event"
    return "processing_error"
