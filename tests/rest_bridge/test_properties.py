"""Property tests (hypothesis) of the bridge's parsers and encoders: the SSE framing, the
multipart form of audio uploads, the realtime socket's base64 PCM chunks, and the
stream_config of a session. No service: everything here runs before any gRPC call."""

from __future__ import annotations

import asyncio
import base64
import json
import re

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from rest_bridge import audio, sse
from rest_bridge.app import create_app
from rest_bridge.errors import APIError
from rest_bridge.realtime_events import decode_pcm, session_fields, stream_config
from rest_bridge.settings import BridgeSettings

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# What SSE (and a client that splits on every Unicode line break) sees as line ends.
SSE_LINE_END = re.compile(r"\r\n|\r|\n")


def parse_sse(text: str) -> list[str]:
    """The data of each event, per the SSE spec (events end with a blank line)."""
    events, data = [], []
    for line in SSE_LINE_END.split(text):
        if not line:
            if data:
                events.append("\n".join(data))
            data = []
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))
    return events


@PROPERTY
@given(payload=st.dictionaries(st.text(max_size=8), JSON, max_size=5))
def test_a_frame_is_one_event_whose_data_is_the_payload(payload: dict) -> None:
    frame = sse.frame(payload)
    assert frame.startswith("data: ") and frame.endswith("\n\n")
    [data] = parse_sse(frame)
    assert json.loads(data) == payload
    # Clients that split lines on every Unicode line break (str.splitlines) see one line.
    assert frame.splitlines() == [frame.removesuffix("\n\n"), ""]


@PROPERTY
@given(payloads=st.lists(st.dictionaries(st.text(max_size=4), JSON, max_size=3), max_size=5),
       fail=st.booleans())  # fmt: skip
def test_a_stream_ends_with_done_after_its_frames_and_at_most_one_error(
    payloads: list[dict], fail: bool
) -> None:
    async def source():
        for payload in payloads:
            yield payload
        if fail:
            raise RuntimeError("mid-stream failure")

    async def frames() -> list[str]:
        return [f async for f in sse.event_stream(source())]

    events = parse_sse("".join(asyncio.run(frames())))
    assert events[-1] == "[DONE]"
    assert [json.loads(e) for e in events[: len(payloads)]] == payloads
    errors = events[len(payloads) : -1]
    assert len(errors) == int(fail)
    if fail:
        assert json.loads(errors[0])["error"]["code"] == 500


FIELD_NAMES = st.sampled_from(
    ["model", "language", "prompt", "response_format", "temperature", "stream", "n", "seed",
     "timestamp_granularities[]", "top_k", "request_id", "x"]
)  # fmt: skip
FIELD_VALUES = (
    st.text(max_size=12)
    | st.integers(-5, 5).map(str)
    | st.sampled_from(["json", "text", "verbose_json", "srt", "true", "false", "segment", "word"])
)


def _request(content: bytes, content_type: str) -> Request:
    app = create_app(BridgeSettings(max_audio_file_mb=0.001))  # about 1 KiB
    chunks = [content]

    async def receive() -> dict:
        return {"type": "http.request", "body": chunks.pop() if chunks else b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/audio/transcriptions",
             "headers": [(b"content-type", content_type.encode())], "app": app,
             "query_string": b""}  # fmt: skip
    return Request(scope, receive)


@settings(PROPERTY, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=6),
    file=st.none() | st.binary(max_size=2048),
    filename=st.text(max_size=10),
)
def test_audio_forms_parse_or_fail_with_a_4xx(fields, file, filename) -> None:
    files = {"file": (filename or "a.wav", file or b"", "audio/wav")} if file is not None else None
    data = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    built = httpx.Request("POST", "http://x/", data=data, files=files)
    content_type = built.headers.get("content-type", "multipart/form-data; boundary=none")
    request = _request(built.read(), content_type)
    try:
        form, content, _name = asyncio.run(audio._read_form(request))
    except APIError as error:
        assert 400 <= error.status < 500, error.message
        return
    assert file is not None and content == file and len(file) <= 0.001 * (1 << 20)
    assert form.response_format in ("json", "text", "verbose_json", "srt", "vtt")


@PROPERTY
@given(pcm=st.binary(min_size=1, max_size=4096))
def test_base64_pcm_round_trips_within_the_limit(pcm: bytes) -> None:
    text = base64.b64encode(pcm).decode()
    decoded = decode_pcm(text, max_bytes=2048)
    if len(pcm) > 2048 + 2:  # the length check allows base64 padding slack
        assert isinstance(decoded, str)
    elif len(pcm) % 2:
        assert decoded == "PCM16 audio holds an even, non-zero number of bytes."
    elif len(pcm) <= 2048:
        assert decoded == pcm


@PROPERTY
@given(audio=JSON | st.text(alphabet="ABCabc012+/=-_ \n", max_size=64))
def test_any_audio_value_decodes_or_is_refused_with_a_reason(audio) -> None:
    decoded = decode_pcm(audio, max_bytes=2048)
    assert isinstance(decoded, str | bytes)
    if isinstance(decoded, bytes):
        assert decoded and len(decoded) % 2 == 0
        assert base64.b64decode(audio, validate=True) == decoded


@PROPERTY
@given(event=st.dictionaries(st.sampled_from(["type", "model", "language", "session",
                                              "input_audio_format", "prompt"]), JSON))  # fmt: skip
def test_session_updates_build_a_config_or_raise_value_error(event: dict) -> None:
    try:
        fields = session_fields(event)
        config = stream_config(fields) if isinstance(fields.get("model"), str) else None
    except ValueError:
        return
    if config is not None:
        assert config.model == fields["model"]


def test_parse_sse_sees_frames_split_by_unicode_line_breaks() -> None:
    """The regression the first property found: U+2028 (and U+2029, U+0085) left raw
    inside a frame break clients that split lines on them."""
    frame = sse.frame({"text": "a\u2028b\u2029c\x85d"})
    assert "\u2028" not in frame and "\u2029" not in frame and "\x85" not in frame
    assert json.loads(frame.removeprefix("data: "))["text"] == "a\u2028b\u2029c\x85d"
