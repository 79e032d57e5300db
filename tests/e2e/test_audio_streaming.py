"""Live transcription: AudioService over gRPC (unary, server-streaming, and the
bidirectional StreamTranscribe with its limits) and the /v1/realtime WebSocket mapped onto
it, with the bad input each must survive."""

from __future__ import annotations

import asyncio
import base64
import json

import grpc
import pytest
import websockets

from protoserve.audio.v1 import audio_pb2 as pb
from protoserve.audio.v1 import audio_pb2_grpc
from tests.audio_samples import encode, pcm16, speech_or_synthetic, synthetic
from tests.e2e.speech import MAX_STREAM_SECONDS

pytestmark = pytest.mark.e2e

CHUNK_SECONDS = 0.1
SAMPLES_PER_CHUNK = int(16_000 * CHUNK_SECONDS)


@pytest.fixture(scope="module")
def audio_stub(speech_servers):
    with grpc.insecure_channel(speech_servers.grpc_target) as channel:
        yield audio_pb2_grpc.AudioServiceStub(channel)


@pytest.fixture(scope="module")
def twenty_seconds() -> bytes:
    return pcm16(speech_or_synthetic(20.0))


def _chunks(pcm: bytes) -> list[bytes]:
    size = SAMPLES_PER_CHUNK * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def _stream_requests(pcm: bytes, commit_after: set[int]):
    """Config, then 100 ms chunks with a commit after the given chunk numbers; the last
    commit is final."""
    yield pb.StreamTranscribeRequest(config=pb.StreamConfig(model="whisper", language="en"))
    chunks = _chunks(pcm)
    for index, chunk in enumerate(chunks):
        yield pb.StreamTranscribeRequest(audio=chunk)
        if index in commit_after:
            final = index == len(chunks) - 1
            yield pb.StreamTranscribeRequest(commit=pb.Commit(final=final))


def test_unary_and_streaming_transcribe(audio_stub) -> None:
    data, name = encode(synthetic(5.0), "flac")
    request = pb.TranscribeRequest(model="whisper", audio=data, filename=name, timestamps=True)
    reply = audio_stub.Transcribe(request, metadata=(("x-request-id", "audio-1"),), timeout=60)
    assert reply.request_id == "audio-1" and reply.model == "whisper" and reply.language
    assert reply.segments and reply.usage.duration_seconds == pytest.approx(5.0)
    events = list(audio_stub.TranscribeStream(request, timeout=60))
    assert events[-1].WhichOneof("event") == "result"
    deltas = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    assert deltas == events[-1].result.text == reply.text


def test_stream_transcribe_two_commits(audio_stub, twenty_seconds) -> None:
    """20 s in 100 ms chunks, committed after 8 s and at the end: deltas, two results."""
    last = len(_chunks(twenty_seconds)) - 1
    responses = list(
        audio_stub.StreamTranscribe(_stream_requests(twenty_seconds, {79, last}), timeout=120)
    )
    kinds = [r.WhichOneof("event") for r in responses]
    assert kinds[0] == "ready" and responses[0].ready.sample_rate_hz == 16_000
    results = [r.result for r in responses if r.WhichOneof("event") == "result"]
    assert [r.utterance for r in results] == [0, 1]
    for result in results:
        deltas = [r.delta for r in responses if r.WhichOneof("event") == "delta"]
        text = "".join(d.text for d in deltas if d.utterance == result.utterance)
        assert text and text == result.text
        assert result.usage.tokens.completion_tokens > 0
    assert results[0].usage.duration_seconds == pytest.approx(8.0)
    assert results[1].usage.duration_seconds == pytest.approx(12.0)


def test_stream_transcribe_limits(audio_stub) -> None:
    def run(messages) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as error:
            list(audio_stub.StreamTranscribe(iter(messages), timeout=60))
        return error.value

    config = pb.StreamTranscribeRequest(config=pb.StreamConfig(model="whisper"))
    wrong_rate = pb.StreamConfig(model="whisper", sample_rate_hz=8000)
    error = run([pb.StreamTranscribeRequest(config=wrong_rate)])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "16000" in error.details()
    error = run([pb.StreamTranscribeRequest(audio=b"\0\0")])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "config" in error.details()
    error = run([config, pb.StreamTranscribeRequest(audio=b"\0" * ((1 << 20) + 2))])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    second = b"\0" * 32_000
    too_long = [config] + [pb.StreamTranscribeRequest(audio=second)] * (MAX_STREAM_SECONDS + 1)
    error = run(too_long)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-stream-duration" in error.details()
    unknown = pb.StreamTranscribeRequest(config=pb.StreamConfig(model="nope"))
    assert run([unknown]).code() == grpc.StatusCode.NOT_FOUND


def test_odd_chunk_is_a_recoverable_error(audio_stub) -> None:
    messages = [
        pb.StreamTranscribeRequest(config=pb.StreamConfig(model="whisper", language="en")),
        pb.StreamTranscribeRequest(audio=b"\0\0\0"),
        pb.StreamTranscribeRequest(audio=pcm16(synthetic(1.0))),
        pb.StreamTranscribeRequest(commit=pb.Commit(final=True)),
    ]
    responses = list(audio_stub.StreamTranscribe(iter(messages), timeout=60))
    kinds = [r.WhichOneof("event") for r in responses]
    assert kinds[0] == "ready" and "error" in kinds and kinds[-1] == "result"
    assert next(r.error for r in responses if r.HasField("error")).code == "invalid_audio"


# -- the realtime WebSocket --------------------------------------------------------------
def _ws_url(servers) -> str:
    return servers.http_url.replace("http://", "ws://") + "/v1/realtime"


async def _send(ws, event: dict) -> None:
    await ws.send(json.dumps(event))


async def _recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=60))


async def _append(ws, pcm: bytes) -> None:
    await _send(ws, {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


async def test_realtime_two_utterances(speech_servers, twenty_seconds) -> None:
    async with websockets.connect(_ws_url(speech_servers)) as ws:
        created = await _recv(ws)
        assert created["type"] == "session.created" and created["id"].startswith("sess-")
        await _send(ws, {"type": "session.update", "model": "whisper", "language": "en"})
        chunks = _chunks(twenty_seconds)
        for index, chunk in enumerate(chunks):
            await _append(ws, chunk)
            if index == 79:
                await _send(ws, {"type": "input_audio_buffer.commit"})
        await _send(ws, {"type": "input_audio_buffer.commit", "final": True})
        done: list[dict] = []
        deltas: list[str] = []
        while len(done) < 2:
            event = await _recv(ws)
            assert event["type"] in ("transcription.delta", "transcription.done"), event
            if event["type"] == "transcription.delta":
                deltas.append(event["delta"])
            else:
                assert "".join(deltas) == event["text"] and event["text"]
                assert event["usage"]["total_tokens"] > event["usage"]["completion_tokens"] > 0
                done.append(event)
                deltas = []
        # The session goes on: the next utterance opens a new call.
        await _append(ws, pcm16(synthetic(1.0)))
        await _send(ws, {"type": "input_audio_buffer.commit", "final": True})
        while (event := await _recv(ws))["type"] != "transcription.done":
            assert event["type"] == "transcription.delta"


async def test_realtime_bad_input_keeps_the_connection(speech_servers) -> None:
    async with websockets.connect(_ws_url(speech_servers)) as ws:
        await _recv(ws)  # session.created
        expectations = [
            ({"type": "input_audio_buffer.append", "audio": "AAAA"}, "model_not_validated"),
            ({"type": "input_audio_buffer.commit"}, "model_not_validated"),
            ({"type": "session.update"}, "invalid_event"),
            ({"type": "session.update", "model": "nope"}, "model_not_found"),
            ({"type": "session.update", "model": "whisper", "sample_rate": 8000}, "invalid_audio"),
            ({"type": "no.such.event"}, "unknown_event"),
        ]
        for event, code in expectations:
            await _send(ws, event)
            reply = await _recv(ws)
            assert reply["type"] == "error" and reply["code"] == code, (event, reply)
        await ws.send("{not json")
        assert (await _recv(ws))["code"] == "invalid_json"
        await _send(ws, {"type": "session.update", "model": "whisper", "language": "en"})
        for bad in ("not base64!!", "", base64.b64encode(b"\0\0\0").decode(), 5):
            await _send(ws, {"type": "input_audio_buffer.append", "audio": bad})
            reply = await _recv(ws)
            assert reply["type"] == "error" and reply["code"] == "invalid_audio", (bad, reply)
        await _append(ws, pcm16(synthetic(1.5)))
        await _send(ws, {"type": "input_audio_buffer.commit", "final": True})
        while (event := await _recv(ws))["type"] != "transcription.done":
            assert event["type"] == "transcription.delta", event


def test_leaving_a_stream_frees_the_engine(speech_servers, audio_stub) -> None:
    """A client that goes away mid-utterance cancels its transcription: no request, block
    or encoder state is left (the engine asserts the latter whenever it is idle; the
    engine tests show an abort freeing them)."""
    import time

    from protoserve.models.v1 import models_pb2, models_pb2_grpc

    config = pb.StreamConfig(model="whisper", language="en")
    chunks = [pb.StreamTranscribeRequest(audio=c) for c in _chunks(pcm16(synthetic(300.0)))]
    requests = iter(
        [
            pb.StreamTranscribeRequest(config=config),
            *chunks,
            pb.StreamTranscribeRequest(commit=pb.Commit()),
        ]
    )
    call = audio_stub.StreamTranscribe(requests, metadata=(("x-request-id", "leaver"),), timeout=60)
    assert next(call).HasField("ready")
    assert next(call).HasField("delta")  # the first window is done: the next is running
    call.cancel()
    with grpc.insecure_channel(speech_servers.grpc_target) as channel:
        models = models_pb2_grpc.ModelsServiceStub(channel)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = models.GetModel(models_pb2.GetModelRequest(name="whisper"), timeout=10).stats
            if stats.num_running == stats.num_waiting == 0:
                break
            time.sleep(0.05)
    assert stats.num_running == stats.num_waiting == 0
    assert stats.kv_blocks_free == stats.kv_blocks_total
    finished = [line for line in speech_servers.log().splitlines() if '"leaver-u0"' in line]
    assert finished and '"outcome": "cancelled"' in finished[-1], finished
