"""The upload limit set by --max-audio-clip-filesize-mb and, in a second server, by env
VLLM_MAX_AUDIO_CLIP_FILESIZE_MB: a file just over it is refused (400 from the bridge,
INVALID_ARGUMENT from the service), one just under it is transcribed, and a live
utterance over it ends StreamTranscribe with RESOURCE_EXHAUSTED."""

from __future__ import annotations

import grpc
import httpx
import pytest

from protoserve.audio.v1 import audio_pb2 as pb
from protoserve.audio.v1 import audio_pb2_grpc
from tests.audio_samples import encode, pcm16, synthetic
from tests.e2e.speech import serve_speech

pytestmark = pytest.mark.e2e

LIMIT_MB = 0.05  # 52,428 bytes: 1.5 s of 16 kHz PCM16 wav fits, 1.7 s does not
LIMIT_BYTES = int(LIMIT_MB * (1 << 20))


@pytest.fixture(scope="module", params=["flag", "env"])
def limited(request, whisper_model_dir, tmp_path_factory):
    if request.param == "flag":
        args, env = ("--max-audio-clip-filesize-mb", str(LIMIT_MB)), {}
    else:
        args, env = (), {"VLLM_MAX_AUDIO_CLIP_FILESIZE_MB": str(LIMIT_MB)}
    yield from serve_speech(whisper_model_dir, tmp_path_factory, args, env)


def _upload(servers, data: bytes, name: str) -> httpx.Response:
    return httpx.post(
        f"{servers.openai_base_url}/audio/transcriptions",
        files={"file": (name, data)},
        data={"model": "whisper", "language": "en"},
        timeout=60,
    )


def test_an_upload_just_over_the_limit_is_refused(limited) -> None:
    over, name = encode(synthetic(1.7), "wav")
    under, _ = encode(synthetic(1.5), "wav")
    assert len(under) < LIMIT_BYTES < len(over) < 2 * LIMIT_BYTES
    reply = _upload(limited, over, name)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == "file" and "Maximum file size exceeded" in error["message"]
    assert _upload(limited, under, name).status_code == 200
    with grpc.insecure_channel(limited.grpc_target) as channel:  # the service's own check
        stub = audio_pb2_grpc.AudioServiceStub(channel)
        request = pb.TranscribeRequest(model="whisper", audio=over, filename=name)
        with pytest.raises(grpc.RpcError) as failure:
            stub.Transcribe(request, timeout=60)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Maximum file size exceeded" in failure.value.details()
        assert stub.Transcribe(pb.TranscribeRequest(model="whisper", audio=under), timeout=60)


def test_a_live_utterance_over_the_limit_is_resource_exhausted(limited) -> None:
    config = pb.StreamTranscribeRequest(config=pb.StreamConfig(model="whisper", language="en"))
    audio = pcm16(synthetic(1.7))  # 54,400 bytes, sent in 100 ms chunks, never committed
    chunks = [audio[i : i + 3200] for i in range(0, len(audio), 3200)]
    messages = [config] + [pb.StreamTranscribeRequest(audio=c) for c in chunks]
    with grpc.insecure_channel(limited.grpc_target) as channel:
        stub = audio_pb2_grpc.AudioServiceStub(channel)
        call = stub.StreamTranscribe(iter(messages), timeout=60)
        ready = next(call)
        assert ready.ready.max_utterance_bytes == LIMIT_BYTES
        with pytest.raises(grpc.RpcError) as failure:
            list(call)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-audio-clip-filesize-mb" in failure.value.details()
