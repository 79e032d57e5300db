"""Automatic prefix caching end to end: hits change what is computed, never the tokens.

Identical greedy and seeded-sampled outputs with and without cache hits, one request at a
time or many, under forced preemption, with chunked prefill on and off; a 1,024-token
shared prefix computed once; cache_salt isolation; integrity after every step."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from engine_helpers import VOCAB, TinyModel, collect, make_engine, prompts, run_all, tokens

from engine import LLMEngine, SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=8)
ONE_TOKEN = SamplingParams(temperature=0.0, max_tokens=1)
SYSTEM = prompts(1, seed=40, min_len=26, max_len=26)[0]  # shared by most requests


@pytest.fixture(scope="module")
def long_llama(llama: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The llama weights with room for 2,048 positions (plain rope: same weights)."""
    dest: Path = tmp_path_factory.mktemp("llama-long")
    shutil.copy(llama.path / "model.safetensors", dest / "model.safetensors")
    config = json.loads((llama.path / "config.json").read_text())
    config["max_position_embeddings"] = 2048
    (dest / "config.json").write_text(json.dumps(config))
    return TinyModel(dest, llama.hf)


def _count_model_tokens(engine: LLMEngine) -> list[int]:
    """Rows the model runner actually runs, per step."""
    counts: list[int] = []
    prepare = engine.runner.prepare_inputs

    def counting(batch):  # noqa: ANN001, ANN202
        inputs = prepare(batch)
        counts.append(int(inputs.input_ids.shape[0]))
        return inputs

    engine.runner.prepare_inputs = counting
    return counts


def test_shared_1024_token_prefix_is_computed_once(long_llama: TinyModel) -> None:
    shared = torch.randint(3, VOCAB, (1024,), generator=torch.Generator().manual_seed(31))
    first = shared.tolist() + list(range(100, 110))
    second = shared.tolist() + list(range(200, 207))
    params = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)
    engine = make_engine(long_llama, block_size=16, max_num_seqs=4)
    engine.add_request("first", first, params)
    run_all(engine)
    before = engine.stats()
    counts = _count_model_tokens(engine)
    engine.add_request("second", second, params)
    outputs = run_all(engine)["second"]
    after = engine.stats()
    assert sum(counts) == 7 + 3  # its own 7 prompt tokens, then 3 decodes
    assert after.num_tokens_computed - before.num_tokens_computed == 10
    assert {o.num_cached_tokens for o in outputs} == {1024}
    assert after.prefix_cache_hits - before.prefix_cache_hits == 1024
    assert after.prefix_cache_queries - before.prefix_cache_queries == len(second)

    cold = make_engine(long_llama, block_size=16, max_num_seqs=4, prefix_caching=False)
    cold.add_request("second", second, params)
    cold_outputs = run_all(cold)["second"]
    assert tokens(cold_outputs) == tokens(outputs)
    assert cold_outputs[-1].num_cached_tokens == 0
    assert cold.stats().num_tokens_computed == len(second) + 3


def _batch() -> list[tuple[list[int], SamplingParams]]:
    """16 requests: most behind the whole system prompt, some behind part of it (a hit
    ending mid-way), some unrelated, one repeating another's prompt exactly; greedy and
    seeded sampling alternate."""
    suffixes = prompts(16, seed=41, min_len=1, max_len=20)
    batch = []
    for k, suffix in enumerate(suffixes):
        prompt = {0: SYSTEM, 1: SYSTEM, 2: SYSTEM[:10], 3: []}[k % 4] + suffix
        if k == 8:
            prompt = batch[0][0]
        params = (
            GREEDY
            if k % 2 == 0
            else SamplingParams(temperature=0.8, top_p=0.9, seed=200 + k, max_tokens=8)
        )
        batch.append((prompt, params))
    return batch


@pytest.fixture(scope="module")
def expected(llama: TinyModel) -> dict[str, list[int]]:
    engine = make_engine(llama, max_model_len=96, prefix_caching=False)
    for k, (prompt, params) in enumerate(_batch()):
        engine.add_request(str(k), prompt, params)
    return {rid: tokens(outs) for rid, outs in run_all(engine).items()}


MODES = {
    "one_at_a_time": dict(),
    "batch_of_16": dict(),
    "chunked_8": dict(max_num_batched_tokens=8),
    "no_chunking": dict(chunked=False, max_num_batched_tokens=96),
    "preemption": dict(num_blocks=24),  # 96 slots for up to 16 x 54 tokens
}


@pytest.mark.parametrize("mode", MODES)
def test_cache_hits_give_identical_outputs(llama, expected, mode: str) -> None:
    engine = make_engine(llama, max_model_len=96, **MODES[mode])
    preempted: list[str] = []
    schedule = engine.scheduler.schedule

    def recording():  # noqa: ANN202
        out = schedule()
        preempted.extend(out.preempted_request_ids)
        return out

    engine.scheduler.schedule = recording
    outputs: dict = {}
    batch = _batch()
    engine.add_request("0", *batch[0])  # warms the cache (the others may still miss)
    collect(outputs, run_all(engine)["0"])
    for k, (prompt, params) in enumerate(batch[1:], start=1):
        engine.add_request(str(k), prompt, params)
        if mode == "one_at_a_time":
            for outs in run_all(engine).values():
                collect(outputs, outs)
    for outs in run_all(engine).values():  # integrity checked after every step
        collect(outputs, outs)
    assert {rid: tokens(outs) for rid, outs in outputs.items()} == expected
    cached = {rid: outs[-1].num_cached_tokens for rid, outs in outputs.items()}
    assert cached["0"] == 0 and cached["1"] == 24 and cached["2"] == 8  # whole blocks
    if mode != "preemption":  # there, other requests may evict 0's last blocks first
        assert cached["8"] == 4 * ((len(batch[8][0]) - 1) // 4)  # 0's prompt again
    stats = engine.stats()
    assert stats.prefix_cache_hits >= sum(cached.values()) > 0
    assert stats.num_kv_blocks_free == stats.num_kv_blocks_total
    assert 0 < stats.num_kv_blocks_cached <= stats.num_kv_blocks_free
    assert bool(preempted) == (mode == "preemption")


def test_cache_salt_isolates(llama) -> None:
    engine = make_engine(llama, max_model_len=64)
    prompt = prompts(1, seed=50, min_len=30, max_len=30)[0]

    def cached(request_id: str, salt: str | None) -> int:
        engine.add_request(request_id, prompt, ONE_TOKEN, cache_salt=salt)
        return run_all(engine)[request_id][-1].num_cached_tokens

    assert cached("a", "tenant-a") == 0
    assert cached("b", "tenant-b") == 0  # same prompt, other salt: no hit
    assert cached("c", None) == 0
    assert cached("d", "tenant-a") == 28  # 7 whole blocks of 4, the 30th token computed
    assert cached("e", None) == 28


def test_aborting_one_sharer_leaves_the_other_intact(llama) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=10, ignore_eos=True)
    alone = make_engine(llama)
    alone.add_request("b", SYSTEM + [7, 8, 9], params)
    expected_b = tokens(run_all(alone)["b"])
    engine = make_engine(llama)
    engine.add_request("a", SYSTEM + [5], params)
    outputs: dict = {}
    collect(outputs, engine.step())
    engine.add_request("b", SYSTEM + [7, 8, 9], params)
    collect(outputs, engine.step())  # b shares a's 6 cached blocks
    shared = engine.kv_cache.block_ids("b")[:6]
    assert shared == engine.kv_cache.block_ids("a")[:6]
    assert [engine.kv_cache.pool.blocks[i].ref_count for i in shared] == [2] * 6
    engine.abort_request("a")
    assert engine.kv_cache.block_ids("b")[:6] == shared
    assert [engine.kv_cache.pool.blocks[i].ref_count for i in shared] == [1] * 6
    engine.check_integrity()
    for outs in run_all(engine).values():
        collect(outputs, outs)
    assert tokens(outputs["b"]) == expected_b


def test_stress_arrivals_aborts_priorities_and_salts(llama) -> None:
    """Random arrivals over three shared prefixes and two salts, random aborts and
    priorities, a cache that forces eviction and preemption: integrity after every
    step, the untouched requests' greedy tokens as without caching, all blocks free."""
    rng = random.Random(7)
    heads = [SYSTEM, SYSTEM[:13], prompts(1, seed=60, min_len=20, max_len=20)[0]]
    work = []
    for k, suffix in enumerate(prompts(30, seed=61, min_len=1, max_len=12)):
        prompt = rng.choice(heads) + suffix
        work.append((str(k), prompt, rng.choice([None, "s"]), rng.randint(-2, 2)))
    params = SamplingParams(temperature=0.0, max_tokens=8)
    reference = make_engine(llama, max_model_len=64, prefix_caching=False)
    for rid, prompt, _, _ in work:
        reference.add_request(rid, prompt, params)
    expected = {rid: tokens(outs) for rid, outs in run_all(reference).items()}
    engine = make_engine(llama, max_model_len=64, num_blocks=30, policy="priority")
    outputs: dict = {}
    aborted: set[str] = set()
    pending = list(work)
    while pending or engine.has_unfinished_requests():
        for _ in range(rng.randint(0, 3)):
            if pending:
                rid, prompt, salt, priority = pending.pop(0)
                engine.add_request(rid, prompt, params, priority=priority, cache_salt=salt)
        if rng.random() < 0.08 and outputs:
            victim = rng.choice(sorted(outputs))
            if engine.abort_request(victim) is not None:
                aborted.add(victim)
        collect(outputs, engine.step())
        engine.check_integrity()
    for rid in expected.keys() - aborted:
        assert tokens(outputs[rid]) == expected[rid], rid
    stats = engine.stats()
    assert aborted and stats.prefix_cache_hits > 0
    assert stats.num_kv_blocks_free == stats.num_kv_blocks_total and stats.num_kv_blocks_cached
