"""Logprobs are log_softmax of the model's raw logits (before penalties, bias and
temperature), checked against transformers on the same tiny checkpoint: the chosen
token's value and rank, the top list, requested ids, and prompt logprobs across chunked
prefill and a prefix-cache hit."""

from __future__ import annotations

import torch
from engine_helpers import make_engine, prompts, run_all, tokens

from engine import SamplingParams


def _hf_logprobs(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model.hf(torch.tensor([ids])).logits[0].float().log_softmax(-1)


def test_sample_logprobs_are_raw_model_logprobs(llama) -> None:
    engine = make_engine(llama)
    prompt = prompts(1, seed=3)[0]
    params = SamplingParams(
        temperature=1.4, repetition_penalty=1.5, presence_penalty=1.0, max_tokens=6,
        logit_bias=((17, 4.0),), logprobs=4, logprob_token_ids=(17, 3, 400), seed=1,
    )  # fmt: skip
    engine.add_request("a", prompt, params)
    outputs = run_all(engine)["a"]
    generated = tokens(outputs)
    reference = _hf_logprobs(llama, prompt + generated)
    for step, output in enumerate(outputs):
        [entry] = output.logprobs
        row = reference[len(prompt) - 1 + step]
        token = generated[step]
        assert entry.chosen.token_id == token
        assert abs(entry.chosen.logprob - row[token].item()) < 1e-4
        assert entry.chosen.rank == int((row > row[token]).sum()) + 1
        top_values, top_ids = row.topk(4)
        assert [t.token_id for t in entry.top] == top_ids.tolist()
        torch.testing.assert_close(
            torch.tensor([t.logprob for t in entry.top]), top_values, atol=1e-4, rtol=0
        )
        assert [t.rank for t in entry.top] == [1, 2, 3, 4]
        assert [t.token_id for t in entry.requested] == [17, 3, 400]
        for item in entry.requested:
            assert abs(item.logprob - row[item.token_id].item()) < 1e-4
            assert item.rank == int((row > row[item.token_id]).sum()) + 1


def test_zero_and_whole_vocabulary_logprobs(llama) -> None:
    engine = make_engine(llama)
    engine.add_request("none", [5, 6, 7], SamplingParams(temperature=0, max_tokens=2, logprobs=0))
    engine.add_request("all", [5, 6, 7], SamplingParams(temperature=0, max_tokens=2, logprobs=-1))
    engine.add_request("off", [5, 6, 7], SamplingParams(temperature=0, max_tokens=2))
    out = run_all(engine)
    assert out["none"][0].logprobs[0].top == [] and out["none"][0].logprobs[0].chosen.rank == 1
    whole = out["all"][0].logprobs[0].top
    assert len(whole) == engine.vocab_size and whole[0].rank == 1
    assert abs(sum(torch.tensor([t.logprob for t in whole]).exp().tolist()) - 1) < 1e-4
    assert all(o.logprobs is None for o in out["off"])


def test_prompt_logprobs_over_chunks_and_prefix_cache_hits(llama) -> None:
    engine = make_engine(llama, max_num_batched_tokens=16)  # the 40-token prompt: 3 chunks
    prompt = prompts(1, seed=4, min_len=40, max_len=40)[0]
    params = SamplingParams(temperature=0, max_tokens=2, prompt_logprobs=3)
    engine.add_request("first", prompt, params)
    run_all(engine)
    engine.add_request("again", prompt, params)  # its blocks are cached: still all positions
    out = run_all(engine)["again"]
    entries = out[0].prompt_logprobs
    assert out[1].prompt_logprobs is None
    assert len(entries) == len(prompt) and entries[0] is None
    reference = _hf_logprobs(llama, prompt)
    for position in range(1, len(prompt)):
        entry, row = entries[position], reference[position - 1]
        assert entry.chosen.token_id == prompt[position]
        assert abs(entry.chosen.logprob - row[prompt[position]].item()) < 1e-4
        assert [t.token_id for t in entry.top] == row.topk(3).indices.tolist()
    engine.check_integrity()


def test_prompt_logprobs_of_a_request_finishing_on_its_first_token(llama) -> None:
    """max_tokens 1 (what echo with max_tokens 0 runs), or EOS at once: the finish must
    not drop the prompt logprobs the first output carries."""
    engine = make_engine(llama)
    prompt = prompts(1, seed=5)[0]
    engine.add_request(
        "one", prompt, SamplingParams(temperature=0, max_tokens=1, prompt_logprobs=1)
    )
    [output] = run_all(engine)["one"]
    assert output.finished and len(output.prompt_logprobs) == len(prompt)
    engine.check_integrity()
