"""LLMEngine end to end on tiny checkpoints: greedy parity with transformers.generate,
continuous batching, chunked prefill, preemption, stop conditions, abort."""

from __future__ import annotations

import pytest
from engine_helpers import EOS_PROMPT, hf_greedy, make_engine, prompts, run_all, tokens

from engine import FinishReason, LLMEngine, SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=16)


def test_single_request_matches_hf_generate_and_stops_at_eos(llama_eos) -> None:
    engine = make_engine(llama_eos)
    (eos,) = engine.eos_token_ids
    engine.add_request("r", EOS_PROMPT, GREEDY)
    outputs = run_all(engine)["r"]
    expected = hf_greedy(llama_eos, EOS_PROMPT, 16, eos_token_id=eos)
    assert tokens(outputs) == expected and expected[-1] == eos and len(expected) < 16
    assert [o.num_output_tokens for o in outputs] == list(range(1, len(expected) + 1))
    assert [o.finished for o in outputs] == [False] * (len(expected) - 1) + [True]
    last = outputs[-1]
    assert (last.finish_reason, last.stop_token_id) == (FinishReason.STOP, eos)
    assert last.num_prompt_tokens == len(EOS_PROMPT) and last.num_cached_tokens == 0


@pytest.mark.parametrize("kind", ["llama_eos", "llama_tied", "mistral"])
def test_staggered_concurrent_requests_match_hf(request, tiny_models, kind: str) -> None:
    """Request k joins the running batch after k steps; every one equals HF alone."""
    model = request.getfixturevalue("llama_eos") if kind == "llama_eos" else tiny_models[kind]
    engine = make_engine(model)
    eos = engine.eos_token_ids[0]
    batch = [EOS_PROMPT, *prompts(7, seed=3, min_len=2, max_len=40)]
    results: dict = {}
    for k, prompt in enumerate(batch):
        engine.add_request(str(k), prompt, GREEDY)
        for output in engine.step():
            results.setdefault(output.request_id, []).append(output)
    for rid, outs in run_all(engine).items():
        results.setdefault(rid, []).extend(outs)
    for k, prompt in enumerate(batch):
        assert tokens(results[str(k)]) == hf_greedy(model, prompt, 16, eos_token_id=eos), k
    assert engine.stats().num_kv_blocks_free == engine.stats().num_kv_blocks_total


def _mixed_requests(engine: LLMEngine) -> None:
    batch = prompts(8, seed=4, min_len=10, max_len=40)
    for k, prompt in enumerate(batch):
        params = (
            GREEDY
            if k % 2 == 0
            else SamplingParams(temperature=0.8, top_p=0.9, seed=100 + k, max_tokens=16)
        )
        engine.add_request(str(k), prompt, params)


def _record_preemptions(engine: LLMEngine) -> list[str]:
    preempted: list[str] = []
    schedule = engine.scheduler.schedule

    def recording():  # noqa: ANN202
        out = schedule()
        preempted.extend(out.preempted_request_ids)
        return out

    engine.scheduler.schedule = recording
    return preempted


@pytest.mark.parametrize(
    "constraint",
    [
        dict(max_num_batched_tokens=8),  # every prompt chunked
        dict(num_blocks=24),  # 96 token slots for 8 requests of up to 56 tokens: preemption
        dict(num_blocks=24, max_num_batched_tokens=8),
        dict(chunked=False, max_num_batched_tokens=96, num_blocks=30),
    ],
)
def test_constrained_runs_give_identical_outputs(llama, constraint: dict) -> None:
    reference = make_engine(llama, max_model_len=96)
    _mixed_requests(reference)
    expected = {rid: tokens(outs) for rid, outs in run_all(reference).items()}
    engine = make_engine(llama, max_model_len=96, **constraint)
    preempted = _record_preemptions(engine)
    _mixed_requests(engine)
    got = {rid: tokens(outs) for rid, outs in run_all(engine).items()}  # integrity each step
    assert got == expected
    if "num_blocks" in constraint:
        assert preempted, "the constraint should force preemption"
    engine.check_integrity()
    stats = engine.stats()
    assert stats.num_kv_blocks_free == stats.num_kv_blocks_total
    assert (stats.num_running, stats.num_waiting) == (0, 0)


def test_seeded_request_is_identical_alone_and_in_a_batch(llama) -> None:
    mine = SamplingParams(temperature=1.0, seed=7, max_tokens=12, ignore_eos=True)
    alone = make_engine(llama)
    alone.add_request("me", EOS_PROMPT, mine)
    expected = tokens(run_all(alone)["me"])
    crowded = make_engine(llama, seed=99)
    for k, prompt in enumerate(prompts(15, seed=5)):
        seed = k if k % 2 else None
        crowded.add_request(
            str(k), prompt, SamplingParams(temperature=0.9, seed=seed, max_tokens=12)
        )
        if k == 6:
            crowded.add_request("me", EOS_PROMPT, mine)
    assert tokens(run_all(crowded)["me"]) == expected


def test_stop_conditions(llama_eos) -> None:
    engine = make_engine(llama_eos)
    eos = engine.eos_token_ids[0]
    free_run = hf_greedy(llama_eos, EOS_PROMPT, 16)  # no EOS: the unconstrained path
    eos_at = free_run.index(eos)
    stop_id = free_run[1]
    cases = {
        "length": SamplingParams(temperature=0, max_tokens=2),
        "stop_id": SamplingParams(temperature=0, max_tokens=16, stop_token_ids=(stop_id,)),
        "ignore_eos": SamplingParams(temperature=0, max_tokens=eos_at + 3, ignore_eos=True),
        "min_tokens": SamplingParams(temperature=0, max_tokens=16, min_tokens=eos_at + 2),
    }
    for rid, params in cases.items():
        engine.add_request(rid, EOS_PROMPT, params)
    out = {rid: (tokens(o), o[-1]) for rid, o in run_all(engine).items()}
    assert (
        out["length"][0] == free_run[:2] and out["length"][1].finish_reason == FinishReason.LENGTH
    )
    assert out["stop_id"][0] == free_run[:2]
    assert (out["stop_id"][1].finish_reason, out["stop_id"][1].stop_token_id) == (
        FinishReason.STOP,
        stop_id,
    )
    assert out["ignore_eos"][0] == free_run[: eos_at + 3]  # went through EOS
    assert out["ignore_eos"][1].finish_reason == FinishReason.LENGTH
    min_tokens_out = out["min_tokens"][0]
    assert eos not in min_tokens_out[: eos_at + 2] and len(min_tokens_out) > eos_at + 2


def test_context_length_ends_a_request(llama) -> None:
    engine = make_engine(llama, max_model_len=20)
    engine.add_request("r", list(range(3, 18)), SamplingParams(temperature=0, max_tokens=100))
    outs = run_all(engine)["r"]
    assert len(tokens(outs)) == 5 and outs[-1].finish_reason == FinishReason.LENGTH


def test_abort_frees_blocks_at_once(llama) -> None:
    engine = make_engine(llama)
    for k, prompt in enumerate(prompts(3, seed=6)):
        engine.add_request(str(k), prompt, SamplingParams(max_tokens=50, ignore_eos=True))
    engine.step()
    engine.step()
    used = engine.stats().num_kv_blocks_total - engine.stats().num_kv_blocks_free
    final = engine.abort_request("1")
    assert final is not None and final.finished and final.new_token_ids == []
    assert final.finish_reason == FinishReason.ABORT and final.num_output_tokens == 2
    assert engine.stats().num_kv_blocks_total - engine.stats().num_kv_blocks_free < used
    assert engine.abort_request("1") is None and engine.abort_request("nope") is None
    engine.check_integrity()
    engine.add_request("w", [5, 6, 7], GREEDY)  # waiting, never scheduled
    for rid in ("0", "2", "w"):
        engine.abort_request(rid)
    stats = engine.stats()
    assert (stats.num_running, stats.num_waiting) == (0, 0)
    assert stats.num_kv_blocks_free == stats.num_kv_blocks_total
    assert engine.step() == [] and not engine.has_unfinished_requests()
