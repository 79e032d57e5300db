"""Logits parity with transformers (float32) for every native layout we load: untied,
tied, Mistral with a sliding window, and llama3 rope scaling; in one batched prefill and
through chunked prefill + paged decode."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import TinyModel, make_engine, prompts

from engine import LLMEngine, SamplingParams

ATOL = 1e-4
MODELS = ["llama", "llama_tied", "mistral", "llama3_rope"]


def _step_logits(engine: LLMEngine) -> list[tuple[str, int, torch.Tensor]]:
    """One engine step by hand, keeping the logits of every row: (id, start, logits)."""
    batch = engine.scheduler.schedule()
    inputs = engine.runner.prepare_inputs(batch)
    with torch.inference_mode():
        hidden = engine.model(
            inputs.input_ids, inputs.positions, inputs.attn_metadata, engine.runner.kv_caches
        )
        logits = engine.model.compute_logits(hidden).float()
    rows, row = [], 0
    for seq in batch.sequences:
        rows.append((seq.request_id, seq.start_position, logits[row : row + seq.num_new_tokens]))
        row += seq.num_new_tokens
    last = {rid: chunk[-1] for rid, _, chunk in rows}
    sampled = [int(last[s.request_id].argmax()) for s in batch.sampling_sequences]
    engine.scheduler.update_from_output(batch, sampled)
    return rows


def _hf_logits(model: TinyModel, token_ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model.hf(torch.tensor([token_ids])).logits[0].float()


def _check_against_hf(engine: LLMEngine, model: TinyModel, recorded, ids: list[str]) -> int:
    full = {}
    for rid in ids:
        request = engine.scheduler.get_request(rid)
        full[rid] = _hf_logits(model, request.prompt_token_ids + request.output_token_ids)
    for rid, start, chunk in recorded:
        expected = full[rid][start : start + chunk.shape[0]]
        torch.testing.assert_close(chunk, expected, atol=ATOL, rtol=0)
    return len(recorded)


@pytest.mark.parametrize("kind", MODELS)
def test_batched_prefill_logits_match_transformers(tiny_models, kind: str) -> None:
    model = tiny_models[kind]
    engine = make_engine(model)
    batch = prompts(5, seed=11, min_len=1, max_len=30)
    for i, prompt in enumerate(batch):
        engine.add_request(str(i), prompt, SamplingParams(temperature=0, max_tokens=100))
    recorded = _step_logits(engine)
    assert len(recorded) == len(batch)  # one step, one forward for all prompts
    for rid, start, chunk in recorded:
        assert start == 0
        torch.testing.assert_close(chunk, _hf_logits(model, batch[int(rid)]), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_chunked_prefill_and_paged_decode_logits_match(tiny_models, kind: str) -> None:
    """Budget 7 tokens, 4-token blocks: prompts split across steps, decodes batched with
    chunks, the Mistral window (8) crossing block boundaries."""
    model = tiny_models[kind]
    engine = make_engine(model, max_num_batched_tokens=7, block_size=4)
    batch = prompts(3, seed=12, min_len=9, max_len=20)
    for i, prompt in enumerate(batch):
        engine.add_request(str(i), prompt, SamplingParams(temperature=0, max_tokens=100))
    recorded = []
    for _ in range(16):
        recorded += _step_logits(engine)
    assert any(start > 0 and chunk.shape[0] > 1 for _, start, chunk in recorded)  # a later chunk
    assert any(chunk.shape[0] == 1 for _, _, chunk in recorded)  # decodes
    assert _check_against_hf(engine, model, recorded, [str(i) for i in range(3)]) > 20
