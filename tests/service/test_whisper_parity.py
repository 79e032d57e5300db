"""Greedy transcription tokens equal transformers' `WhisperForConditionalGeneration.
generate` on the tiny random Whisper, for the same audio: short-form (language given or
detected, translation, previous-text prompt, timestamps) and long-form (> 30 s), where
both follow transformers' sequential algorithm (30 s windows; each next window starts at
the last complete segment's end timestamp)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from service.audio.features import log_mel
from service.audio.transcriber import Transcription, TranscriptionOptions
from tests.audio_samples import espeak, synthetic

CASES = {
    "language": (5.0, TranscriptionOptions(language="en"), {"language": "en"}),
    "detected": (5.0, TranscriptionOptions(), {}),
    "translate": (5.0, TranscriptionOptions(task="translate", language="de"), {"language": "de"}),
    "prompt": (6.0, TranscriptionOptions(prompt="the lighthouse keeper"), {"prompt": True}),
    "timestamps": (
        8.0,
        TranscriptionOptions(language="en", timestamps=True),
        {"language": "en", "return_timestamps": True},
    ),
    "long": (47.0, TranscriptionOptions(language="en"), {"language": "en"}),
    "long_detected": (65.0, TranscriptionOptions(), {}),
}


@pytest.fixture(scope="module")
def served(whisper_model_dir):
    from service.config import EngineOptions, ModelSpec
    from service.loading import load_model

    model = load_model(
        ModelSpec(str(whisper_model_dir), ("whisper",)), EngineOptions(device="cpu"), False
    )
    yield model
    model.engine.shutdown()


@pytest.fixture(scope="module")
def reference(whisper_model_dir):
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(str(whisper_model_dir)).eval()


def _hf_tokens(reference, served, audio: np.ndarray, options: TranscriptionOptions, kw: dict):
    """transformers' tokens for the same features (long audio: long-form, timestamps)."""
    features = log_mel(served.speech.feature_extractor, audio).mel[None]
    kw = {"task": options.task, **kw}
    if kw.pop("prompt", False):
        kw["prompt_ids"] = torch.tensor(served.speech.prompt_ids(options.prompt, served.tokenizer))
    if features.shape[-1] > 3000:
        kw["return_timestamps"] = True
    with torch.inference_mode():
        return reference.generate(features, **kw)[0].tolist()


async def _ours(served, audio: np.ndarray, options: TranscriptionOptions, name: str):
    job = Transcription(f"parity-{name}", served, audio, options)
    deltas = [text async for text in job.run()]
    assert "".join(deltas) == job.transcript.text
    return job.transcript


@pytest.mark.parametrize("name", list(CASES))
async def test_greedy_tokens_match_transformers(served, reference, name) -> None:
    seconds, options, kw = CASES[name]
    audio = synthetic(seconds, seed=len(name))
    transcript = await _ours(served, audio, options, name)
    expected = _hf_tokens(reference, served, audio, options, kw)
    assert transcript.token_ids == expected
    assert len(expected) > 3
    if seconds > 30:  # several windows, each a complete set of segments
        assert len(transcript.segments) >= 2 and transcript.segments[-1].end > 30


async def test_long_form_segments_match_transformers(served, reference) -> None:
    audio = synthetic(47.0, seed=9)
    options = TranscriptionOptions(language="en")
    transcript = await _ours(served, audio, options, "segments")
    features = log_mel(served.speech.feature_extractor, audio).mel[None]
    with torch.inference_mode():
        out = reference.generate(
            features, language="en", task="transcribe", return_timestamps=True, return_segments=True
        )
    expected = [
        (float(s["start"]), float(s["end"]), s["tokens"].tolist()) for s in out["segments"][0]
    ]
    ours = [(s.start, s.end, s.token_ids) for s in transcript.segments]
    assert [t for *_, t in ours] == [t for *_, t in expected]
    for (start, end, _), (hf_start, hf_end, _) in zip(ours, expected, strict=True):
        assert start == pytest.approx(hf_start) and end == pytest.approx(hf_end)


async def test_real_speech_matches_transformers(served, reference) -> None:
    audio = espeak()
    if audio is None:
        pytest.skip("espeak-ng is not installed: no real speech sample")
    options = TranscriptionOptions()
    transcript = await _ours(served, audio, options, "speech")
    assert transcript.token_ids == _hf_tokens(reference, served, audio, options, {})
