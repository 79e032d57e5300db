"""One StreamTranscribe call: live PCM16 audio in, deltas and per-utterance results out.

The first client message must be the config; the server answers `ready`. Then a reader
task buffers audio chunks and turns each commit into an utterance, while a worker
transcribes utterances one at a time (the reader keeps reading meanwhile) and puts their
deltas and results on the call's output. A final commit (or the client closing its side)
ends the call once the last utterance is done. Leaving the call (client gone, deadline)
cancels both tasks, which aborts the engine request of the utterance in progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from protoserve.audio.v1 import audio_pb2 as pb
from service.audio.decode import SAMPLE_RATE, pcm16_to_float
from service.audio.transcriber import Transcription, TranscriptionOptions
from service.config import AudioOptions
from service.errors import InvalidArgument, ResourceExhausted, Unimplemented
from service.registry import ServedModel

log = structlog.get_logger(__name__)

PCM16_BYTES = 2
_END = object()  # no more output


@dataclass(frozen=True)
class _Utterance:
    index: int
    pcm: bytes


class StreamSession:
    def __init__(
        self,
        request_id: str,
        resolve: Callable[[str], ServedModel],
        limits: AudioOptions,
        result_message: Callable[[int, Transcription], pb.UtteranceResult],
    ) -> None:
        self.request_id = request_id
        self._resolve = resolve
        self._limits = limits
        self._result_message = result_message
        self._out: asyncio.Queue = asyncio.Queue()
        self._work: asyncio.Queue[_Utterance | None] = asyncio.Queue()
        self._model: ServedModel | None = None
        self._config = pb.StreamConfig()
        self._seconds_received = 0.0

    async def run(
        self, requests: AsyncIterator[pb.StreamTranscribeRequest]
    ) -> AsyncIterator[pb.StreamTranscribeResponse]:
        first = await anext(aiter(requests), None)
        if first is None:
            return
        yield self._message(ready=self._configure(first))
        tasks = [
            asyncio.ensure_future(self._read(requests)),
            asyncio.ensure_future(self._transcribe_utterances()),
        ]
        try:
            while (item := await self._out.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- config --------------------------------------------------------------------------
    def _configure(self, first: pb.StreamTranscribeRequest) -> pb.StreamReady:
        if first.WhichOneof("message") != "config":
            raise InvalidArgument("The first message of the call must be `config`.", "config")
        config = first.config
        model = self._resolve(config.model)
        if model.speech is None:
            raise Unimplemented(f"The model `{model.name}` does not support transcription.")
        rate = config.sample_rate_hz if config.HasField("sample_rate_hz") else SAMPLE_RATE
        if rate != SAMPLE_RATE:
            raise InvalidArgument(
                f"sample_rate_hz must be {SAMPLE_RATE} (PCM16 mono), got {rate}.",
                "config.sample_rate_hz",
            )
        if config.encoding not in (pb.AUDIO_ENCODING_UNSPECIFIED, pb.AUDIO_ENCODING_PCM16_LE):
            raise InvalidArgument("encoding must be AUDIO_ENCODING_PCM16_LE.", "config.encoding")
        model.speech.check_language(config.language)
        self._model, self._config = model, config
        limits = self._limits
        return pb.StreamReady(
            model=model.name,
            sample_rate_hz=SAMPLE_RATE,
            max_chunk_bytes=limits.max_chunk_bytes,
            max_utterance_bytes=limits.max_file_bytes,
            max_stream_seconds=limits.max_stream_seconds,
        )

    # -- the reader ----------------------------------------------------------------------
    async def _read(self, requests: AsyncIterator[pb.StreamTranscribeRequest]) -> None:
        buffer = bytearray()
        count = 0
        try:
            async for message in requests:
                kind = message.WhichOneof("message")
                if kind == "audio":
                    self._add_audio(buffer, message.audio)
                elif kind == "commit":
                    if buffer:
                        await self._work.put(_Utterance(count, bytes(buffer)))
                        count += 1
                        buffer.clear()
                    if message.commit.final:
                        break
                else:
                    await self._out.put(self._error("invalid_event", f"unexpected `{kind}`"))
            else:  # the client closed its side: a final commit
                if buffer:
                    await self._work.put(_Utterance(count, bytes(buffer)))
        except Exception as exc:  # noqa: BLE001 - ends the call with its status
            await self._out.put(exc)
        await self._work.put(None)

    def _add_audio(self, buffer: bytearray, chunk: bytes) -> None:
        limits = self._limits
        if len(chunk) > limits.max_chunk_bytes:
            raise InvalidArgument(
                f"audio chunks are at most {limits.max_chunk_bytes} bytes, got {len(chunk)}.",
                "audio",
            )
        if len(chunk) % PCM16_BYTES:
            self._out.put_nowait(
                self._error("invalid_audio", "PCM16 chunks hold an even number of bytes")
            )
            return
        self._seconds_received += len(chunk) / PCM16_BYTES / SAMPLE_RATE
        if self._seconds_received > limits.max_stream_seconds:
            raise ResourceExhausted(
                f"This call sent more than {limits.max_stream_seconds:g} s of audio "
                "(--max-stream-duration).",
                "audio",
            )
        if len(buffer) + len(chunk) > limits.max_file_bytes:
            raise ResourceExhausted(
                f"An utterance holds at most {limits.max_file_bytes} bytes of PCM16 "
                "(--max-audio-clip-filesize-mb): commit more often.",
                "audio",
            )
        buffer += chunk

    # -- the worker ----------------------------------------------------------------------
    async def _transcribe_utterances(self) -> None:
        try:
            while (utterance := await self._work.get()) is not None:
                await self._transcribe(utterance)
        except Exception as exc:  # noqa: BLE001 - ends the call with its status
            await self._out.put(exc)
        await self._out.put(_END)

    async def _transcribe(self, utterance: _Utterance) -> None:
        assert self._model is not None
        config = self._config
        options = TranscriptionOptions(
            language=self._model.speech.check_language(config.language), prompt=config.prompt
        )
        job = Transcription(
            f"{self.request_id}-u{utterance.index}",
            self._model,
            pcm16_to_float(utterance.pcm),
            options,
        )
        async for text in job.run():
            delta = pb.TranscriptDelta(utterance=utterance.index, text=text)
            await self._out.put(self._message(delta=delta))
        await self._out.put(self._message(result=self._result_message(utterance.index, job)))

    def _error(self, code: str, message: str) -> pb.StreamTranscribeResponse:
        return self._message(error=pb.StreamError(code=code, message=message))

    def _message(self, **event) -> pb.StreamTranscribeResponse:
        return pb.StreamTranscribeResponse(request_id=self.request_id, **event)
