"""Transcription fields that must reach the model, seen end to end: `language` and `prompt`
give transformers' greedy text for the same settings, `temperature` (seeded) samples
(reproducibly, unlike greedy) and is reported in verbose_json; translations in every
response format; mp4 / mpga / mpeg file names; vLLM fields accepted (word granularity,
include_stop_str_in_output, stream_continuous_usage_stats) or refused by name."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest
import torch

from tests.audio_samples import encode, synthetic

pytestmark = pytest.mark.e2e

MODEL = "whisper"
PROMPT = "lighthouse keeper"


@pytest.fixture(scope="module")
def client(speech_servers):
    return openai.OpenAI(
        base_url=speech_servers.openai_base_url, api_key="unused", max_retries=0, timeout=60
    )


@pytest.fixture(scope="module")
def wav() -> tuple[str, bytes]:
    """(file name, bytes): the openai SDK's and httpx's file tuple."""
    data, name = encode(synthetic(4.0, seed=5), "wav")
    return name, data


@pytest.fixture(scope="module")
def reference(whisper_model_dir, wav):
    """transformers' greedy text for the same decoded audio: generate(**kwargs) -> text."""
    from transformers import (
        PreTrainedTokenizerFast,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    from service.audio.decode import decode_audio

    path = str(whisper_model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(path).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    audio = decode_audio(wav[1], wav[0], 1 << 30)
    features = WhisperFeatureExtractor.from_pretrained(path)(
        audio, sampling_rate=16_000, return_tensors="pt"
    ).input_features

    def generate(prompt: str = "", **kwargs) -> str:
        if prompt:
            ids = tokenizer.encode(" " + prompt, add_special_tokens=False)
            kwargs["prompt_ids"] = torch.tensor([tokenizer.convert_tokens_to_ids(
                "<|startofprev|>")] + ids)  # fmt: skip
        with torch.inference_mode():
            tokens = model.generate(features, task="transcribe", **kwargs)[0]
        # A decoding cut at the length limit may end inside a UTF-8 character: the
        # service's incremental detokenizer holds such bytes back, decode() gives U+FFFD.
        return tokenizer.decode(tokens, skip_special_tokens=True).rstrip("\ufffd")

    return generate


def test_language_and_prompt_reach_the_model(client, wav, reference) -> None:
    create = client.audio.transcriptions.create
    english, german = reference(language="en"), reference(language="de")
    prompted = reference(prompt=PROMPT, language="en")
    assert len({english, german, prompted}) == 3  # each setting changes this model's text
    assert create(model=MODEL, file=wav, language="en").text == english
    assert create(model=MODEL, file=wav, language="de").text == german
    assert create(model=MODEL, file=wav, language="en", prompt=PROMPT).text == prompted
    verbose = create(model=MODEL, file=wav, language="de", response_format="verbose_json")
    assert verbose.language == "de"


def test_temperature_samples_and_is_reported(client, wav) -> None:
    create = client.audio.transcriptions.create
    greedy = create(model=MODEL, file=wav, language="en").text
    assert create(model=MODEL, file=wav, language="en", temperature=0.0).text == greedy
    seeded = {"language": "en", "temperature": 1.0, "extra_body": {"seed": 7}}
    sampled = create(model=MODEL, file=wav, **seeded).text
    assert sampled != greedy
    assert create(model=MODEL, file=wav, **seeded).text == sampled  # the seed reproduces it
    verbose = create(model=MODEL, file=wav, language="en", temperature=0.6,
                     response_format="verbose_json", extra_body={"seed": 7})  # fmt: skip
    assert verbose.segments
    assert all(s.temperature == pytest.approx(0.6, abs=1e-6) for s in verbose.segments)
    default = create(model=MODEL, file=wav, language="en", response_format="verbose_json")
    assert all(s.temperature == 0.0 for s in default.segments)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK's, not ours
def test_translation_in_every_response_format(client, wav) -> None:
    translate = client.audio.translations.create
    plain = translate(model=MODEL, file=wav)
    assert plain.text
    url = f"{client.base_url}audio/translations"
    body = httpx.post(url, files={"file": wav}, data={"model": MODEL}, timeout=60).json()
    assert body == {"text": plain.text}  # vLLM: translations carry no usage
    assert translate(model=MODEL, file=wav, response_format="text") == plain.text
    form = {"model": MODEL, "response_format": "verbose_json"}
    verbose = httpx.post(url, files={"file": wav}, data=form, timeout=60).json()
    assert verbose["task"] == "translate" and verbose["words"] is None
    segments = verbose["segments"]
    assert segments and verbose["text"] == "".join(s["text"] for s in segments)
    assert "usage" not in verbose
    srt = translate(model=MODEL, file=wav, response_format="srt")
    assert re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n", srt)
    vtt = translate(model=MODEL, file=wav, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == len(verbose["segments"])


@pytest.mark.parametrize("name,container", [("talk.mp4", "m4a"), ("talk.mpga", "mp3"),
                                            ("talk.mpeg", "mp3")])  # fmt: skip
def test_mp4_and_mpga_file_names(client, name, container) -> None:
    data, _ = encode(synthetic(3.0, seed=2), container)
    result = client.audio.transcriptions.create(model=MODEL, file=(name, data), language="en")
    assert result.text and result.usage.seconds in (3, 4)


def _form(servers, wav, fields: dict) -> httpx.Response:
    return httpx.post(f"{servers.openai_base_url}/audio/transcriptions", files={"file": wav},
                      data={"model": MODEL, "language": "en", **fields}, timeout=60)  # fmt: skip


def test_word_granularity_and_include_stop_str_are_accepted(speech_servers, wav) -> None:
    fields = {"response_format": "verbose_json", "timestamp_granularities[]": "segment"}
    segment = _form(speech_servers, wav, fields).json()
    for fields in (
        {"response_format": "verbose_json", "timestamp_granularities[]": "word"},
        {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]},
    ):
        reply = _form(speech_servers, wav, fields)
        assert reply.status_code == 200, reply.text
        body = reply.json()  # segment timestamps only, no word list (as vLLM)
        assert body["words"] is None and body["segments"] == segment["segments"]
    plain = _form(speech_servers, wav, {}).json()
    kept = _form(speech_servers, wav, {"include_stop_str_in_output": "true"})
    assert kept.status_code == 200 and kept.json() == plain  # no stop strings to keep


def _chunks(reply: httpx.Response) -> list[dict]:
    frames = [f.removeprefix("data: ") for f in reply.text.split("\n\n") if f]
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


def test_stream_continuous_usage_stats(speech_servers, wav) -> None:
    fields = {"stream": "true", "stream_continuous_usage_stats": "true"}
    chunks = _chunks(_form(speech_servers, wav, fields))
    assert chunks and all("usage" in c for c in chunks) and chunks[-1]["choices"]
    completion = [c["usage"]["completion_tokens"] for c in chunks]
    assert completion == sorted(completion) and completion[-1] > completion[0]
    for chunk in chunks:
        usage = chunk["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    with_usage = _chunks(_form(speech_servers, wav, {**fields, "stream_include_usage": "true"}))
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"] == chunks[-1]["usage"]
    plain = _chunks(_form(speech_servers, wav, {"stream": "true"}))
    assert all("usage" not in c for c in plain)


@pytest.mark.parametrize(
    "fields,param",
    [
        ({"hotwords": "lighthouse"}, "hotwords"),
        ({"vllm_xargs": '{"x": 1}'}, "vllm_xargs"),
        ({"stream_continuous_usage_stats": "true"}, "stream_continuous_usage_stats"),
    ],
)
def test_unsupported_fields_are_refused_by_name(speech_servers, wav, fields, param) -> None:
    reply = _form(speech_servers, wav, fields)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param
