"""/v1/audio/transcriptions and /v1/audio/translations through the official openai SDK
(files encoded at test time with PyAV), every response_format, SSE streaming, and bad
input (not audio, too large, unsupported fields) answered with clear errors while the
server keeps serving."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from tests.audio_samples import encode, espeak, speech_or_synthetic, synthetic

pytestmark = pytest.mark.e2e

MODEL = "whisper"


@pytest.fixture(scope="module")
def client(speech_servers):
    return openai.OpenAI(
        base_url=speech_servers.openai_base_url, api_key="unused", max_retries=0, timeout=60
    )


@pytest.fixture(scope="module")
def clip():
    return speech_or_synthetic(4.0)


@pytest.mark.parametrize("container", ["wav", "mp3", "ogg", "m4a", "webm", "flac"])
def test_sdk_transcribes_every_container(client, clip, container) -> None:
    data, name = encode(clip, container)
    result = client.audio.transcriptions.create(model=MODEL, file=(name, data))
    assert isinstance(result.text, str) and result.text
    # ceil(duration); AAC's encoder priming adds a few ms to the m4a
    assert result.usage.type == "duration" and result.usage.seconds in (4, 5)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK's, not ours
@pytest.mark.parametrize("container", ["wav", "mp3", "webm"])
def test_sdk_translates(client, clip, container) -> None:
    data, name = encode(clip, container)
    result = client.audio.translations.create(model=MODEL, file=(name, data))
    assert isinstance(result.text, str) and result.text


def test_every_response_format_parses(client, clip) -> None:
    data, name = encode(clip, "mp3")
    create = client.audio.transcriptions.create
    plain = create(model=MODEL, file=(name, data), response_format="json", language="en")
    text = create(model=MODEL, file=(name, data), response_format="text", language="en")
    assert isinstance(text, str) and text == plain.text  # OpenAI's plain-text body
    verbose = create(
        model=MODEL,
        file=(name, data),
        response_format="verbose_json",
        timestamp_granularities=["segment"],
        language="en",
    )
    assert verbose.language == "en" and verbose.duration == pytest.approx(4.0, abs=0.01)
    assert verbose.segments and verbose.text == "".join(s.text for s in verbose.segments)
    for segment in verbose.segments:
        assert 0 <= segment.start <= segment.end and segment.tokens
        assert isinstance(segment.avg_logprob, float) and segment.compression_ratio >= 0
    srt = create(model=MODEL, file=(name, data), response_format="srt", language="en")
    assert re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n", srt)
    vtt = create(model=MODEL, file=(name, data), response_format="vtt", language="en")
    assert vtt.startswith("WEBVTT\n\n") and " --> " in vtt
    assert srt.count(" --> ") == vtt.count(" --> ") == len(verbose.segments)


def test_real_speech_sample(client) -> None:
    audio = espeak()
    if audio is None:
        pytest.skip("espeak-ng is not installed: no real speech sample")
    data, name = encode(audio, "ogg")
    result = client.audio.transcriptions.create(model=MODEL, file=(name, data))
    assert result.text and result.usage.seconds == int(-(-len(audio) // 16000))


def test_sse_stream_concatenates_to_the_json_text(speech_servers, clip) -> None:
    data, name = encode(clip, "wav")
    url = f"{speech_servers.openai_base_url}/audio/transcriptions"
    form = {"model": MODEL, "language": "en"}
    whole = httpx.post(url, files={"file": (name, data)}, data=form, timeout=60).json()
    stream_form = {**form, "stream": "true", "stream_include_usage": "true"}
    reply = httpx.post(url, files={"file": (name, data)}, data=stream_form, timeout=60)
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = [f.removeprefix("data: ") for f in reply.text.split("\n\n") if f]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert all(c["object"] == "transcription.chunk" and c["id"].startswith("trsc-") for c in chunks)
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])
    assert text == whole["text"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_translation_stream_chunks(speech_servers, clip) -> None:
    data, name = encode(clip, "wav")
    reply = httpx.post(
        f"{speech_servers.openai_base_url}/audio/translations",
        files={"file": (name, data)},
        data={"model": MODEL, "stream": "true"},
        timeout=60,
    )
    chunks = [json.loads(f[6:]) for f in reply.text.split("\n\n") if f and f != "data: [DONE]"]
    assert chunks and all(c["object"] == "translation.chunk" for c in chunks)


def test_long_audio_is_transcribed_in_windows(client) -> None:
    data, name = encode(synthetic(42.0, seed=3), "mp3")
    verbose = client.audio.transcriptions.create(
        model=MODEL, file=(name, data), response_format="verbose_json", language="en"
    )
    assert verbose.duration == pytest.approx(42.0, abs=0.1)
    assert verbose.segments[-1].end > 0 and verbose.usage.seconds == 42


# -- bad input -------------------------------------------------------------------------
def _post(servers, files, data=None, path="transcriptions") -> httpx.Response:
    url = f"{servers.openai_base_url}/audio/{path}"
    return httpx.post(url, files=files, data=data or {"model": MODEL}, timeout=120)


def _error(reply: httpx.Response, status: int, param: str | None) -> dict:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == status and error["param"] == param, error
    return error


def _still_serving(servers) -> None:
    data, name = encode(synthetic(1.0), "wav")
    assert _post(servers, {"file": (name, data)}).status_code == 200


def test_non_audio_bytes_name_the_file(speech_servers, client) -> None:
    error = _error(
        _post(speech_servers, {"file": ("notes.txt", b"hello, not audio " * 50)}), 400, "file"
    )
    assert "notes.txt" in error["message"]
    with pytest.raises(openai.BadRequestError, match="notes.txt"):
        client.audio.transcriptions.create(model=MODEL, file=("notes.txt", b"\x00\x01" * 999))
    _still_serving(speech_servers)


def test_a_30_mb_upload_is_refused(speech_servers) -> None:
    reply = _post(speech_servers, {"file": ("big.wav", b"\x00" * (30 << 20))})
    assert "Maximum file size exceeded" in _error(reply, 400, "file")["message"]
    _still_serving(speech_servers)


@pytest.mark.parametrize(
    "fields,param",
    [
        ({"timestamp_granularities[]": "segment"}, "timestamp_granularities[]"),  # json
        ({"response_format": "verbose_json", "stream": "true"}, "stream"),
        ({"use_beam_search": "true"}, "use_beam_search"),
        ({"language": "xx"}, "language"),
        ({"temperature": "5"}, "temperature"),
        ({"model": "nope"}, "model"),
    ],
)
def test_bad_fields_are_refused(speech_servers, clip, fields, param) -> None:
    data, name = encode(clip, "wav")
    reply = _post(speech_servers, {"file": (name, data)}, {"model": MODEL, **fields})
    expected = 404 if fields.get("model") == "nope" else 400
    assert reply.status_code == expected, reply.text
    if param is not None:
        assert reply.json()["error"]["param"] == param, reply.text


def test_file_as_a_string_is_422(speech_servers) -> None:
    url = f"{speech_servers.openai_base_url}/audio/transcriptions"
    reply = httpx.post(url, files={"model": (None, MODEL), "file": (None, "abc")}, timeout=30)
    assert reply.status_code == 422, reply.text
