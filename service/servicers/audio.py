"""AudioService: Transcribe / Translate (unary and server-streaming) and the bidirectional
StreamTranscribe. Uploads are decoded here (PyAV, in a worker thread); the bridge only
forwards the bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from protoserve.audio.v1 import audio_pb2 as pb
from protoserve.audio.v1 import audio_pb2_grpc
from protoserve.common.v1 import output_pb2
from service.audio.decode import decode_audio
from service.audio.params import audio_sampling
from service.audio.session import StreamSession
from service.audio.transcriber import Transcript, Transcription, TranscriptionOptions
from service.config import AudioOptions
from service.errors import Unimplemented
from service.interceptors import request_id_of
from service.registry import ModelRegistry, ServedModel


class AudioServicer(audio_pb2_grpc.AudioServiceServicer):
    def __init__(self, registry: ModelRegistry, options: AudioOptions | None = None):
        self._registry = registry
        self._options = options or AudioOptions()

    async def Transcribe(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TranscribeResponse:
        return await self._unary(request, context, "transcribe")

    async def Translate(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TranscribeResponse:
        return await self._unary(request, context, "translate")

    async def TranscribeStream(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TranscribeStreamResponse]:
        async for message in self._stream(request, context, "transcribe"):
            yield message

    async def TranslateStream(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TranscribeStreamResponse]:
        async for message in self._stream(request, context, "translate"):
            yield message

    async def StreamTranscribe(
        self,
        request_iterator: AsyncIterator[pb.StreamTranscribeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamTranscribeResponse]:
        session = StreamSession(
            request_id_of(context), self._speech_model, self._options, _utterance_result
        )
        async for message in session.run(request_iterator):
            yield message

    # -- shared --------------------------------------------------------------------------
    async def _unary(self, request, context, task: str) -> pb.TranscribeResponse:
        job = await self._job(request, context, task)
        async for _ in job.run():
            pass
        return _response(job)

    async def _stream(self, request, context, task: str):
        job = await self._job(request, context, task)
        header = {"request_id": job.request_id, "model": job.model.name}
        async for text in job.run():
            delta = pb.TranscriptDelta(text=text, usage=_usage(job).tokens)
            yield pb.TranscribeStreamResponse(**header, delta=delta)
        yield pb.TranscribeStreamResponse(**header, result=_response(job))

    async def _job(self, request: pb.TranscribeRequest, context, task: str) -> Transcription:
        model = self._speech_model(request.model)
        speech = model.speech
        speech.check_task(task, request.to_language)
        language = speech.check_language(request.language)
        sampling, max_new_tokens = audio_sampling(
            request.sampling, request.penalties, request.stopping, model.vocab_size
        )
        options = TranscriptionOptions(
            task=task,
            language=language,
            prompt=request.prompt,
            timestamps=request.timestamps,
            sampling=sampling,
            max_new_tokens=max_new_tokens,
            priority=request.priority,
        )
        request_id = request_id_of(context, request.request_id)
        audio = await asyncio.to_thread(
            decode_audio, request.audio, request.filename, self._options.max_file_bytes
        )
        return Transcription(request_id, model, audio, options)

    def _speech_model(self, name: str) -> ServedModel:
        model = self._registry.get(name)
        if model.speech is None:
            raise Unimplemented(
                f"The model `{model.name}` does not support transcription or translation."
            )
        model.admit()
        return model


def _usage(job: Transcription) -> pb.AudioUsage:
    usage = job.usage
    return pb.AudioUsage(
        tokens=output_pb2.Usage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        ),
        duration_seconds=job.duration,
    )


def _response(job: Transcription) -> pb.TranscribeResponse:
    transcript: Transcript | None = job.transcript
    assert transcript is not None
    return pb.TranscribeResponse(
        request_id=job.request_id,
        model=job.model.name,
        text=transcript.text,
        language=transcript.language,
        duration_seconds=transcript.duration,
        segments=[
            pb.Segment(
                id=i,
                seek=s.seek,
                start=s.start,
                end=s.end,
                text=s.text,
                tokens=s.token_ids,
                temperature=job.options.sampling.temperature,
                avg_logprob=s.avg_logprob,
                compression_ratio=s.compression_ratio,
            )
            for i, s in enumerate(transcript.segments)
        ],
        usage=_usage(job),
    )


def _utterance_result(index: int, job: Transcription) -> pb.UtteranceResult:
    transcript = job.transcript
    assert transcript is not None
    return pb.UtteranceResult(
        utterance=index, text=transcript.text, language=transcript.language, usage=_usage(job)
    )
