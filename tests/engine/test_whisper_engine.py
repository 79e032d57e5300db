"""The encoder-decoder path of the engine (tiny random Whisper): the encoder runs once per
new window, batched across requests; decoding shares the scheduler and the paged cache
with every other request; per-request encoder state dies with the request (finish,
abort) and survives preemption; requests without audio are refused."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from engine_helpers import run_all, tokens

from engine import (
    CacheConfig,
    EngineConfig,
    InvalidParameter,
    LLMEngine,
    ModelConfig,
    SamplingParams,
    SchedulerConfig,
)
from engine.encoder_cache import EncoderInput
from service.audio.features import log_mel
from service.audio.speech_model import SpeechModel
from tests.audio_samples import synthetic

GREEDY = SamplingParams(temperature=0.0, max_tokens=16)
MAX_MODEL_LEN = 32


@pytest.fixture(scope="module")
def speech(whisper_model_dir) -> SpeechModel:
    return SpeechModel.load(whisper_model_dir, 448)


def _engine(path, num_blocks: int | None = None, block_size: int = 16) -> LLMEngine:
    return LLMEngine(
        EngineConfig(
            model=ModelConfig(str(path), max_model_len=MAX_MODEL_LEN),
            cache=CacheConfig(block_size=block_size, num_blocks=num_blocks),
            scheduler=SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=512),
            device="cpu",
        )
    )


@pytest.fixture(scope="module")
def engine(whisper_model_dir) -> LLMEngine:
    return _engine(whisper_model_dir)


@pytest.fixture(scope="module")
def alone(engine, speech) -> dict[int, list[int]]:
    """Each window decoded by itself: the reference for batched and preempted runs."""
    return {seed: _alone(engine, speech, seed) for seed in (1, 2, 3)}


def _add(engine: LLMEngine, speech: SpeechModel, request_id: str, seed: int, **kw) -> None:
    prompt = speech.decoder_prompt("transcribe", "", kw.pop("timestamps", False), [])
    features = log_mel(speech.feature_extractor, synthetic(4.0, seed=seed)).window(0)
    encoder_input = EncoderInput(features, prompt.decoding)
    params = kw.pop("params", GREEDY)
    engine.add_request(request_id, prompt.token_ids, params, encoder_input=encoder_input)


def _alone(engine: LLMEngine, speech: SpeechModel, seed: int) -> list[int]:
    _add(engine, speech, f"alone-{seed}", seed)
    return tokens(run_all(engine)[f"alone-{seed}"])


def test_batched_windows_match_one_by_one(engine, speech, alone) -> None:
    expected = alone
    encoded_before = engine.runner.encoder_cache.num_encoded
    calls = []
    encode = engine.runner.encoder_cache._encode
    engine.runner.encoder_cache._encode = lambda f: calls.append(f.shape[0]) or encode(f)
    try:
        for seed in expected:
            _add(engine, speech, f"together-{seed}", seed)
        outputs = run_all(engine)  # check_integrity after every step
    finally:
        engine.runner.encoder_cache._encode = encode
    assert calls == [3]  # one encoder pass for the three new windows
    assert engine.runner.encoder_cache.num_encoded == encoded_before + 3
    for seed, want in expected.items():
        assert tokens(outputs[f"together-{seed}"]) == want
    assert not engine.runner.live_request_ids()


def test_encoder_state_dies_with_the_request(engine, speech) -> None:
    cache = engine.runner.encoder_cache
    for seed in (4, 5, 6):
        _add(engine, speech, f"r{seed}", seed)
    assert cache.request_ids() == {"r4", "r5", "r6"} and cache.nbytes == 0  # not encoded yet
    engine.step()
    per_request = cache.nbytes // 3
    assert per_request > 0 and engine.runner.live_request_ids() == {"r4", "r5", "r6"}
    engine.abort_request("r5")
    assert engine.runner.live_request_ids() == {"r4", "r6"} and cache.nbytes == 2 * per_request
    engine.check_integrity()
    run_all(engine)
    assert not engine.runner.live_request_ids() and cache.nbytes == 0
    _add(engine, speech, "never-scheduled", 7)
    engine.abort_request("never-scheduled")  # its pending input goes too
    assert not engine.runner.live_request_ids()
    engine.check_no_leaks()


def test_preemption_keeps_encoder_state(whisper_model_dir, speech, alone) -> None:
    """Few KV blocks: requests are preempted and recomputed, with the same tokens."""
    expected = alone
    tight = _engine(whisper_model_dir, num_blocks=10, block_size=4)
    for seed in expected:
        _add(tight, speech, f"tight-{seed}", seed)
    preempted, outputs = 0, {}
    while tight.has_unfinished_requests():
        batch_outputs = tight.step()
        for output in batch_outputs:
            outputs.setdefault(output.request_id, []).append(output)
        tight.check_integrity()
        preempted = max(preempted, tight.stats().num_waiting)
    assert preempted > 0
    assert tight.runner.encoder_cache.num_encoded == 3  # a recompute runs the decoder only
    for seed, want in expected.items():
        assert tokens(outputs[f"tight-{seed}"]) == want


def test_timestamp_rules_hold(engine, speech) -> None:
    params = dataclasses.replace(GREEDY, max_tokens=40)
    _add(engine, speech, "stamps", 8, timestamps=True, params=params)
    out = tokens(run_all(engine)["stamps"])
    begin = speech.timestamp_begin
    generated = out[2:]  # after the forced language and task tokens
    if generated[-1] == speech.end_of_text:
        generated = generated[:-1]
    assert generated[0] >= begin  # the first token is a timestamp
    stamps = [t for t in generated if t >= begin]
    assert stamps == sorted(stamps)  # never decreasing
    assert speech.no_timestamps not in out


def test_requests_need_valid_audio(engine, speech) -> None:
    prompt = speech.decoder_prompt("transcribe", "en", False, [])
    with pytest.raises(InvalidParameter) as error:
        engine.add_request("no-audio", prompt.token_ids, GREEDY)
    assert error.value.field == "model"
    bad = EncoderInput(torch.zeros(80, 100), prompt.decoding)
    with pytest.raises(InvalidParameter) as error:
        engine.add_request("short", prompt.token_ids, GREEDY, encoder_input=bad)
    assert error.value.field == "audio" and "(80, 3000)" in error.value.message
    beams = dataclasses.replace(GREEDY, use_beam_search=True, beam_width=2)
    good = EncoderInput(torch.zeros(80, 3000), prompt.decoding)
    with pytest.raises(InvalidParameter) as error:
        engine.add_request("beams", prompt.token_ids, beams, encoder_input=good)
    assert error.value.field == "use_beam_search"
    assert not engine.has_unfinished_requests() and not engine.runner.live_request_ids()
