"""WS /v1/realtime: vLLM's realtime transcription events onto AudioService.StreamTranscribe.

Client events: session.update {model, language?, prompt?, sample_rate?} opens a
StreamTranscribe call (the service validates it; unknown model -> model_not_found, a rate
other than 16 kHz -> invalid_audio); input_audio_buffer.append {audio: base64 PCM16 LE
16 kHz mono} and input_audio_buffer.commit {final} go down the call as audio chunks and
commits. Server events: session.created on connect, transcription.delta,
transcription.done {text, usage} per committed utterance, and error {error, code}.
Each bad event gets an error and the connection stays up. After a final commit the call
ends with its last result; the next append or commit opens a new one with the same
session. Closing the socket cancels the call, which aborts the engine request.

API keys: with --api-key the handshake needs `Authorization: Bearer <key>` (else HTTP
401; rest_bridge/auth.py, as every /v1 path; not a query parameter, which access logs
would keep); the calls carry the bridge's credentials (rest_bridge/channel.py)."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from protoserve.audio.v1 import audio_pb2 as pb
from rest_bridge import convert
from rest_bridge import realtime_events as events
from rest_bridge.errors import from_grpc
from rest_bridge.grpc_client import GrpcClient

log = structlog.get_logger(__name__)

router = APIRouter()


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    await websocket.accept()
    session = RealtimeSession(websocket, websocket.app.state.grpc)
    try:
        await session.run()
    finally:
        await session.close()


class RealtimeSession:
    def __init__(self, websocket: WebSocket, client: GrpcClient) -> None:
        self.websocket = websocket
        self.client = client
        self.id = f"sess-{uuid.uuid4().hex}"
        self._send_lock = asyncio.Lock()
        self._config: pb.StreamConfig | None = None  # set once a session.update succeeded
        self._call: grpc.aio.StreamStreamCall | None = None  # the call audio goes to
        self._readers: set[asyncio.Task] = set()  # the calls still answering
        self._max_chunk_bytes = 1 << 20

    async def run(self) -> None:
        await self._send({"type": "session.created", "id": self.id, "created": convert.now()})
        handlers = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
        }
        while True:
            try:
                text = await self.websocket.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                return
            except KeyError:  # a binary frame
                await self._error("Send JSON events in text frames.", "invalid_json")
                continue
            event = await self._parse(text)
            if event is None:
                continue
            handler = handlers.get(event["type"])
            if handler is None:
                await self._error(f"Unknown event type {event['type']!r}.", "unknown_event")
                continue
            await handler(event)

    async def close(self) -> None:
        """The client left: cancel every call (the engine requests abort)."""
        log.info("realtime session closed", session=self.id, calls=len(self._readers))
        if self._call is not None:
            self._call.cancel()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    # -- client events ------------------------------------------------------------------
    async def _parse(self, text: str) -> dict | None:
        try:
            event = json.loads(text)
        except json.JSONDecodeError as exc:
            await self._error(f"Invalid JSON: {exc.msg}.", "invalid_json")
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self._error("An event is a JSON object with a string `type`.", "invalid_event")
            return None
        return event

    async def _session_update(self, event: dict) -> None:
        fields = events.session_fields(event)
        if not isinstance(fields.get("model"), str) or not fields["model"]:
            await self._error("Missing required field: model", "invalid_event")
            return
        try:
            config = events.stream_config(fields)
        except ValueError as exc:
            await self._error(str(exc), "invalid_event")
            return
        await self._end_call()
        self._config = None
        try:
            await self._open_call(config)
        except grpc.aio.AioRpcError as error:
            await self._error(from_grpc(error).message, events.error_code(error))
            return
        self._config = config

    async def _append(self, event: dict) -> None:
        if self._config is None:
            await self._error(
                "Send a session.update with a model before input_audio_buffer.append.",
                "model_not_validated",
            )
            return
        audio = event.get("audio")
        pcm = events.decode_pcm(audio, self._max_chunk_bytes)
        if isinstance(pcm, str):
            await self._error(pcm, "invalid_audio")
            return
        if await self._ensure_call():
            await self._write(pb.StreamTranscribeRequest(audio=pcm))

    async def _commit(self, event: dict) -> None:
        if self._config is None:
            await self._error(
                "Send a session.update with a model before input_audio_buffer.commit.",
                "model_not_validated",
            )
            return
        final = bool(event.get("final", False))
        if not await self._ensure_call():
            return
        await self._write(pb.StreamTranscribeRequest(commit=pb.Commit(final=final)))
        if final and self._call is not None:
            await self._call.done_writing()
            self._call = None  # the reader delivers its last results, then the call ends

    # -- the call -----------------------------------------------------------------------
    async def _open_call(self, config: pb.StreamConfig) -> None:
        metadata = (("x-request-id", f"{self.id}-{uuid.uuid4().hex[:8]}"),)
        call = self.client.audio.StreamTranscribe(metadata=metadata)
        try:
            await call.write(pb.StreamTranscribeRequest(config=config))
            first = await call.read()
        except grpc.aio.AioRpcError:
            call.cancel()
            raise
        if first is grpc.aio.EOF:
            raise ConnectionError("the service ended the call before it was ready")
        self._max_chunk_bytes = first.ready.max_chunk_bytes or self._max_chunk_bytes
        self._call = call
        reader = asyncio.ensure_future(self._read(call))
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)

    async def _ensure_call(self) -> bool:
        """The open call, or a new one with the session's config (after a final commit
        or a failed call)."""
        if self._call is not None:
            return True
        assert self._config is not None
        try:
            await self._open_call(self._config)
        except (grpc.aio.AioRpcError, ConnectionError) as exc:
            message = from_grpc(exc).message if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            await self._error(message, "processing_error")
            return False
        return True

    async def _write(self, message: pb.StreamTranscribeRequest) -> None:
        call = self._call
        try:
            await call.write(message)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            # The call failed: the reader reports why; the next event opens a new call.
            if self._call is call:
                self._call = None

    async def _end_call(self) -> None:
        """A new session.update: the current call (and what it buffered) is dropped."""
        if self._call is not None:
            self._call.cancel()
            self._call = None

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        """The call's events, as realtime server events."""
        try:
            while (message := await call.read()) is not grpc.aio.EOF:
                await self._forward(message)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                await self._error(from_grpc(error).message, events.error_code(error))
        finally:
            if self._call is call:
                self._call = None

    async def _forward(self, message: pb.StreamTranscribeResponse) -> None:
        kind = message.WhichOneof("event")
        if kind == "delta":
            await self._send({"type": "transcription.delta", "delta": message.delta.text})
        elif kind == "result":
            tokens = message.result.usage.tokens
            usage = {
                "prompt_tokens": tokens.prompt_tokens,
                "completion_tokens": tokens.completion_tokens,
                "total_tokens": tokens.total_tokens,
            }
            await self._send(
                {"type": "transcription.done", "text": message.result.text, "usage": usage}
            )
        elif kind == "error":
            await self._error(message.error.message, message.error.code or "processing_error")

    # -- sending ------------------------------------------------------------------------
    async def _error(self, message: str, code: str) -> None:
        await self._send({"type": "error", "error": message, "code": code})

    async def _send(self, event: dict) -> None:
        async with self._send_lock:
            try:
                await self.websocket.send_text(json.dumps(event, ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError):
                pass  # the client left; run() ends on its next receive
