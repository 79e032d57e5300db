"""POST /v1/audio/transcriptions and /v1/audio/translations (multipart forms) onto
AudioService.Transcribe / Translate and their streaming variants. The file's bytes are
forwarded as they are: the service decodes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.datastructures import UploadFile

from protoserve.audio.v1 import audio_pb2 as pb
from protoserve.common.v1 import params_pb2
from rest_bridge import audio_formats, calls, convert, sse
from rest_bridge.body import validation_error
from rest_bridge.errors import APIError, bad_request
from rest_bridge.grpc_client import GrpcClient, metadata
from rest_bridge.openapi import form_body
from rest_bridge.sampling import Int32, Int64

router = APIRouter()
MIB = 1 << 20
GRANULARITIES = "timestamp_granularities[]"


class TranscriptionForm(BaseModel):
    """The form fields (OpenAI's and vLLM's extras), file aside."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    language: str | None = None
    prompt: str = ""
    response_format: Literal["json", "text", "verbose_json", "srt", "vtt"] = "json"
    timestamp_granularities: list[Literal["segment", "word"]] = []
    temperature: float | None = None
    stream: bool = False
    top_p: float | None = None
    top_k: Int32 | None = None
    min_p: float | None = None
    seed: Int64 | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float | None = None
    use_beam_search: bool = False
    n: Int32 | None = None
    length_penalty: float | None = None
    include_stop_str_in_output: bool = False
    stream_include_usage: bool = False
    stream_continuous_usage_stats: bool = False
    max_completion_tokens: Int32 | None = None
    to_language: str | None = None
    hotwords: str | None = None
    vllm_xargs: str | None = None
    request_id: str | None = None

    def check(self) -> None:
        """What protobuf cannot carry, or the bridge alone knows, is refused here.
        `timestamp_granularities` "word" is accepted as vLLM does: segment timestamps only
        (`words` stays null). `include_stop_str_in_output` changes nothing: transcription
        has no stop strings (and EOS is never text)."""
        if self.timestamp_granularities and self.response_format != "verbose_json":
            raise bad_request(
                "timestamp_granularities requires response_format=verbose_json.", GRANULARITIES
            )
        if self.stream and self.response_format not in ("json", "text"):
            raise bad_request(
                f"response_format={self.response_format} does not support streaming.", "stream"
            )
        for name in ("stream_include_usage", "stream_continuous_usage_stats"):
            if getattr(self, name) and not self.stream:
                raise bad_request("Stream options can only be defined when `stream=True`.", name)
        if self.hotwords:
            raise bad_request(
                "`hotwords` is not supported: Whisper has no hotword biasing (use `prompt`).",
                "hotwords",
            )
        if self.vllm_xargs:
            raise bad_request(
                "`vllm_xargs` is not supported: this server runs no custom logits processors.",
                "vllm_xargs",
            )

    def message(self, audio: bytes, filename: str, request_id: str) -> pb.TranscribeRequest:
        return pb.TranscribeRequest(
            model=self.model or "",
            audio=audio,
            filename=filename,
            language=self.language or "",
            prompt=self.prompt,
            timestamps=self.response_format in audio_formats.TIMESTAMP_FORMATS,
            sampling=params_pb2.SamplingParams(
                temperature=self.temperature,
                top_p=self.top_p,
                top_k=self.top_k,
                min_p=self.min_p,
                seed=self.seed,
                n=self.n,
                use_beam_search=self.use_beam_search,
                length_penalty=self.length_penalty,
            ),
            penalties=params_pb2.PenaltyParams(
                frequency_penalty=self.frequency_penalty,
                presence_penalty=self.presence_penalty,
                repetition_penalty=self.repetition_penalty,
            ),
            stopping=params_pb2.StoppingParams(max_tokens=self.max_completion_tokens),
            to_language=self.to_language or "",
            request_id=request_id,
        )


@router.post("/v1/audio/transcriptions", openapi_extra=form_body(TranscriptionForm))
async def create_transcription(request: Request):
    return await _speech_to_text(request, "transcribe")


@router.post("/v1/audio/translations", openapi_extra=form_body(TranscriptionForm))
async def create_translation(request: Request):
    return await _speech_to_text(request, "translate")


async def _speech_to_text(request: Request, task: str):
    form, audio, filename = await _read_form(request)
    request_id = convert.request_id(request, form.request_id)
    message = form.message(audio, filename, request_id)
    client: GrpcClient = request.app.state.grpc
    transcribe = task == "transcribe"
    if form.stream:
        call = (client.audio.TranscribeStream if transcribe else client.audio.TranslateStream)(
            message, metadata=metadata(request_id, request)
        )
        chunks = _chunks(form, audio_formats.ChunkMaker(task, request_id), calls.stream(call))
        return StreamingResponse(sse.event_stream(chunks), media_type=sse.MEDIA_TYPE)
    rpc = client.audio.Transcribe if transcribe else client.audio.Translate
    [reply] = await calls.unary(request, [rpc(message, metadata=metadata(request_id, request))])
    return audio_formats.render(form.response_format, task, reply)


async def _read_form(request: Request) -> tuple[TranscriptionForm, bytes, str]:
    """The fields, the file's bytes and its name; 400 for a bad form or a file over
    --max-audio-clip-filesize-mb (read in full first, so the client gets the answer)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise APIError(
            400, "Unsupported Media Type: audio endpoints take multipart/form-data.", "Bad Request"
        )
    async with request.form() as form:
        upload = form.get("file")
        fields = {k: v for k, v in form.multi_items() if k not in ("file", GRANULARITIES)}
        fields["timestamp_granularities"] = form.getlist(GRANULARITIES)
        if upload is None:
            raise APIError(400, "1 validation error: file: Field required", "Bad Request", "file")
        if not isinstance(upload, UploadFile):
            message = "`file` must be an uploaded file, not a string."
            raise APIError(422, message, "Unprocessable Entity", "file")
        _check_size(request, upload)
        try:
            parsed = TranscriptionForm.model_validate(fields)
        except ValidationError as exc:
            raise validation_error(exc) from exc
        parsed.check()
        return parsed, await upload.read(), upload.filename or ""


def _check_size(request: Request, upload: UploadFile) -> None:
    limit_mb = request.app.state.settings.max_audio_file_mb
    if upload.size is not None and upload.size > limit_mb * MIB:
        raise bad_request(
            f"Maximum file size exceeded: {upload.size / MIB:.1f} MiB > {limit_mb:g} MiB.", "file"
        )


async def _chunks(
    form: TranscriptionForm, maker: audio_formats.ChunkMaker, messages: AsyncIterator
) -> AsyncIterator[dict]:
    """Deltas, the finish chunk, the usage chunk; with stream_continuous_usage_stats every
    chunk also carries the running usage."""
    result: pb.TranscribeResponse | None = None
    running = form.stream_continuous_usage_stats
    async for message in messages:
        maker.model = message.model
        if message.WhichOneof("event") == "delta":
            delta = message.delta
            yield maker.chunk(delta.text, usage=delta.usage if running else None)
        else:
            result = message.result
    final = result.usage.tokens if running and result is not None else None
    yield maker.chunk("", finish_reason="stop", usage=final)
    if form.stream_include_usage and result is not None:
        yield maker.usage_chunk(result.usage)
