"""Beam search: equal to an exhaustive search on a tiny vocabulary (width >= V^(L-1)),
equal to a straightforward reference beam search on transformers' logits at width 2
(beams forking and sharing partial KV blocks, copy-on-write), and the block mechanics."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from engine_helpers import TinyModel, collect, make_engine, run_all
from transformers import LlamaConfig, LlamaForCausalLM

from engine import SamplingParams
from engine.beam_search import beam_score
from engine.kv_cache import KVCacheManager

VOCAB = 6
EOS = 1


@pytest.fixture(scope="module")
def tiny_vocab(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    torch.manual_seed(21)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, num_hidden_layers=2, max_position_embeddings=64,
        initializer_range=0.6, bos_token_id=0, eos_token_id=EOS, pad_token_id=0,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    path = Path(tmp_path_factory.mktemp("beam")) / "tiny-vocab"
    model.save_pretrained(path, safe_serialization=True)
    return TinyModel(path, model)


def _step_logprobs(model: TinyModel, sequences: list[list[int]]) -> torch.Tensor:
    """log_softmax of the next-token logits after each (equal-length) sequence."""
    with torch.inference_mode():
        return model.hf(torch.tensor(sequences)).logits[:, -1].float().log_softmax(-1)


def _beams(model: TinyModel, prompt, params: SamplingParams):
    engine = make_engine(model, block_size=4)
    engine.add_request("b", prompt, params)
    [output] = run_all(engine)["b"]
    engine.check_no_leaks()
    return output


def _exhaustive(model, prompt, length, ignore_eos, length_penalty):
    """Every finished sequence (ended by EOS, or of full length) with its score."""
    prefixes = [
        list(t) for size in range(length) for t in itertools.product(range(VOCAB), repeat=size)
    ]
    next_logprobs = {}
    for size in range(length):  # one batched forward per prefix length
        batch = [p for p in prefixes if len(p) == size]
        for prefix, row in zip(
            batch, _step_logprobs(model, [prompt + p for p in batch]), strict=False
        ):
            next_logprobs[tuple(prefix)] = row
    scores = []
    for size in range(1, length + 1):
        for tail in map(list, itertools.product(range(VOCAB), repeat=size)):
            ended = not ignore_eos and tail[-1] == EOS
            if (not ignore_eos and EOS in tail[:-1]) or (size < length and not ended):
                continue
            total = sum(float(next_logprobs[tuple(tail[:i])][t]) for i, t in enumerate(tail))
            scores.append((beam_score(total, size - ended, length_penalty), total, tail))
    return sorted(scores, key=lambda s: s[0], reverse=True)


@pytest.mark.parametrize("ignore_eos,length_penalty", [(True, 1.0), (False, 0.7)])
def test_wide_beams_equal_exhaustive_search(tiny_vocab, ignore_eos, length_penalty) -> None:
    prompt, length = [0, 3, 4, 2], 3
    params = SamplingParams(
        use_beam_search=True, beam_width=VOCAB ** (length - 1), max_tokens=length,
        ignore_eos=ignore_eos, length_penalty=length_penalty,
    )  # fmt: skip
    output = _beams(tiny_vocab, prompt, params)
    expected = _exhaustive(tiny_vocab, prompt, length, ignore_eos, length_penalty)[:8]
    got = output.beams[:8]
    assert [b.token_ids for b in got] == [tail for _, _, tail in expected]
    for beam, (score, total, _) in zip(got, expected, strict=True):
        assert beam.cumulative_logprob == pytest.approx(total, abs=1e-4)
        assert beam.score == pytest.approx(score, abs=1e-4)


def _reference_beam_search(model, prompt, width, steps):
    """vLLM's algorithm, written plainly (ignore_eos): keep the `width` best extensions."""
    beams = [([], 0.0)]
    for _ in range(steps):
        logprobs = _step_logprobs(model, [prompt + tokens for tokens, _ in beams])
        candidates = []
        for (tokens, total), row in zip(beams, logprobs, strict=True):
            values, ids = row.topk(2 * width)
            candidates += [
                (tokens + [t], total + v)
                for v, t in zip(values.tolist(), ids.tolist(), strict=False)
            ]
        beams = sorted(candidates, key=lambda c: c[1], reverse=True)[:width]
    return beams


def test_narrow_beams_equal_a_reference_and_share_blocks(llama) -> None:
    prompt = [11, 42, 97, 5, 230, 17]  # 1.5 blocks of 4: forks share a partial block
    params = SamplingParams(use_beam_search=True, beam_width=3, max_tokens=7, ignore_eos=True)
    output = _beams(llama, prompt, params)
    expected = _reference_beam_search(llama, prompt, 3, 7)
    assert [b.token_ids for b in output.beams] == [tokens for tokens, _ in expected]
    for beam, (_, total) in zip(output.beams, expected, strict=True):
        assert beam.cumulative_logprob == pytest.approx(total, abs=1e-3)
    assert output.finish_reason.value == "length" and output.new_token_ids == []


def test_beams_in_a_batch_with_other_requests_and_abort(llama) -> None:
    engine = make_engine(llama, block_size=4)
    params = SamplingParams(use_beam_search=True, beam_width=4, max_tokens=6, logprobs=2)
    engine.add_request("beam", [3, 4, 5, 6, 7], params)
    engine.add_request("plain", [3, 4, 5], SamplingParams(temperature=0, max_tokens=9))
    engine.add_request("gone", [9, 9, 9], params)
    out: dict = {}
    collect(out, engine.step())
    collect(out, engine.step())
    aborted = engine.abort_request("gone")
    assert aborted.finished and aborted.finish_reason.value == "abort" and aborted.beams is None
    while engine.has_unfinished_requests():
        collect(out, engine.step())
        engine.check_integrity()
    [final] = out["beam"]
    assert len(final.beams) == 4 and len(out["plain"]) == 9
    scores = [b.score for b in final.beams]
    assert scores == sorted(scores, reverse=True)
    for beam in final.beams:
        assert len(beam.logprobs) == len(beam.token_ids) == 6
        assert all(
            e.chosen.token_id == t for e, t in zip(beam.logprobs, beam.token_ids, strict=False)
        )
        assert sum(e.chosen.logprob for e in beam.logprobs) == pytest.approx(
            beam.cumulative_logprob, abs=1e-4
        )
    engine.check_integrity()
    engine.check_no_leaks()


def test_fork_shares_blocks_and_a_write_copies_the_partial_one() -> None:
    kv = KVCacheManager(num_blocks=8, block_size=4, enable_prefix_caching=False)
    assert kv.allocate_slots("p", 6)  # blocks 0 (full) and 1 (2 of 4 slots)
    parent_blocks = kv.block_ids("p")
    kv.fork("p", "c")
    assert kv.block_ids("c") == parent_blocks
    assert [kv.pool.blocks[b].ref_count for b in parent_blocks] == [2, 2]
    kv.check_integrity()
    assert kv.allocate_slots("c", 7, write_from=6)  # writes into the shared block 1
    child_blocks = kv.block_ids("c")
    assert child_blocks[0] == parent_blocks[0] and child_blocks[1] != parent_blocks[1]
    assert kv.take_copies() == [(parent_blocks[1], child_blocks[1])]
    assert kv.allocate_slots("p", 7, write_from=6)  # now the parent's own: no copy
    assert kv.block_ids("p") == parent_blocks and kv.take_copies() == []
    assert kv.allocate_slots("c", 9, write_from=8)  # a new block: nothing shared
    assert kv.take_copies() == []
    kv.check_integrity()
    kv.free("p")
    kv.free("c")
    assert kv.num_free_blocks == 8
