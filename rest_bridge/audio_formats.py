"""TranscribeResponse -> the body of each `response_format`, and the SSE chunks.

json and verbose_json are JSON (vLLM's shapes; verbose_json's `duration` a number, as
OpenAI's SDK types it). text, srt and vtt are plain text, as OpenAI returns them and as
its SDK reads them (vLLM answers `text` with JSON and refuses srt/vtt)."""

from __future__ import annotations

import math

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from protoserve.audio.v1 import audio_pb2 as pb
from rest_bridge import convert

TEXT_FORMATS = ("text", "srt", "vtt")
TIMESTAMP_FORMATS = ("verbose_json", "srt", "vtt")
FORMATS = ("json", "verbose_json", *TEXT_FORMATS)


def render(response_format: str, task: str, reply: pb.TranscribeResponse) -> Response:
    if response_format == "text":
        return PlainTextResponse(reply.text)
    if response_format == "srt":
        return PlainTextResponse(srt(reply.segments))
    if response_format == "vtt":
        return PlainTextResponse(vtt(reply.segments), media_type="text/vtt")
    if response_format == "verbose_json":
        return JSONResponse(verbose_json(task, reply))
    body: dict = {"text": reply.text}
    if task == "transcribe":  # vLLM: translations carry no usage
        body["usage"] = duration_usage(reply)
    return JSONResponse(body)


def duration_usage(reply: pb.TranscribeResponse) -> dict:
    return {"type": "duration", "seconds": int(math.ceil(reply.duration_seconds))}


def verbose_json(task: str, reply: pb.TranscribeResponse) -> dict:
    body = {
        "task": task,
        "language": reply.language,
        "duration": reply.duration_seconds,
        "text": reply.text,
        "segments": [
            {
                "id": s.id,
                "seek": s.seek,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": None,  # not computed
            }
            for s in reply.segments
        ],
        "words": None,
    }
    if task == "transcribe":
        body["usage"] = duration_usage(reply)
    return body


def srt(segments) -> str:
    return "".join(
        f"{i}\n{_time(s.start, ',')} --> {_time(s.end, ',')}\n{s.text.strip()}\n\n"
        for i, s in enumerate(segments, start=1)
    )


def vtt(segments) -> str:
    cues = "".join(
        f"{_time(s.start, '.')} --> {_time(s.end, '.')}\n{s.text.strip()}\n\n" for s in segments
    )
    return "WEBVTT\n\n" + cues


def _time(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


class ChunkMaker:
    """vLLM's stream: `{id, object: transcription.chunk, created, model, choices: [{delta:
    {content}, finish_reason, stop_reason}]}`, then an optional usage chunk."""

    def __init__(self, task: str, request_id: str) -> None:
        transcribe = task == "transcribe"
        prefix = "trsc" if transcribe else "trsl"
        self.object = "transcription.chunk" if transcribe else "translation.chunk"
        self.id = f"{prefix}-{request_id}"
        self.created = convert.now()
        self.model = ""

    def chunk(self, content: str, finish_reason: str | None = None, usage=None) -> dict:
        """A delta chunk; `usage` (running token counts) only with continuous usage."""
        body = {
            **self._header(),
            "choices": [
                {"delta": {"content": content}, "finish_reason": finish_reason, "stop_reason": None}
            ],
        }
        if usage is not None:
            body["usage"] = _token_usage(usage)
        return body

    def usage_chunk(self, usage: pb.AudioUsage) -> dict:
        return {**self._header(), "choices": [], "usage": _token_usage(usage.tokens)}

    def _header(self) -> dict:
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.model}


def _token_usage(tokens) -> dict:
    return {
        "prompt_tokens": tokens.prompt_tokens,
        "completion_tokens": tokens.completion_tokens,
        "total_tokens": tokens.total_tokens,
    }
