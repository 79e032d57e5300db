"""KV cache sizing: the CUDA budget's arithmetic with injected memory numbers, the
profiling batches (run here through the CPU runner), and the real thing on a GPU."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import make_engine

from engine import CacheConfig, EngineConfig, LLMEngine, ModelConfig
from engine.kv_memory import CudaMemory, kv_cache_budget, num_profile_blocks, profile_batches
from engine.model_runner import ModelRunner
from engine.sampler import Sampler

GIB = 1 << 30


def test_budget_is_utilization_of_total_less_what_is_in_use() -> None:
    memory = CudaMemory(total=80 * GIB, free=10 * GIB, reserved=60 * GIB, peak_allocated=55 * GIB)
    assert memory.in_use == 65 * GIB  # 10 GiB outside torch's pool + a 55 GiB peak
    assert kv_cache_budget(0.92, memory) == int(0.92 * 80 * GIB) - 65 * GIB
    assert kv_cache_budget(1.0, memory) == 15 * GIB
    with pytest.raises(ValueError, match="gpu_memory_utilization=0.8"):
        kv_cache_budget(0.8, memory)


def test_cache_config_sizes_blocks_from_the_budget() -> None:
    assert CacheConfig().resolve_num_blocks(1000, max_tokens=64, device_budget=10_500) == 10
    explicit = CacheConfig(kv_cache_memory=5000)  # an explicit size wins over the profile
    assert explicit.resolve_num_blocks(1000, max_tokens=64, device_budget=10_500) == 5
    assert CacheConfig().resolve_num_blocks(1000, max_tokens=64) == 4  # CPU auto: 64 / 16
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="gpu_memory_utilization"):
            CacheConfig(gpu_memory_utilization=bad)


def test_profile_batches_fill_the_token_budget() -> None:
    long, spread = profile_batches(2048, 128, 4096, 16)
    (chunk,) = long.sequences
    assert (chunk.start_position, chunk.num_new_tokens, len(chunk.block_ids)) == (2048, 2048, 256)
    assert [s.num_new_tokens for s in spread.sequences] == [16] * 128
    assert all(s.samples for s in spread.sequences)
    long, spread = profile_batches(100, 8, 32, 4)
    assert long.sequences[0].context_len == 32
    assert [s.num_new_tokens for s in spread.sequences] == [13] * 4 + [12] * 4
    assert spread.sequences[-1].block_ids == [25, 26, 27]  # each on its own blocks
    assert num_profile_blocks([long, spread]) == 28
    (only,) = profile_batches(4096, 1, 64, 16)[1].sequences  # capped by one full context
    assert only.num_new_tokens == 64


def test_profile_batches_run_through_the_runner_and_sampler(llama) -> None:
    engine = make_engine(llama, max_model_len=64, max_num_seqs=8, max_num_batched_tokens=100)
    batches = profile_batches(100, 8, 64, 4)
    kv = engine._kv_tensors(num_profile_blocks(batches))
    runner = ModelRunner(engine.model, engine.runner.backend, kv, 4, torch.device("cpu"))
    sampler = Sampler(engine.vocab_size, engine.eos_token_ids, torch.device("cpu"))
    for batch in batches:
        logits = runner.execute(batch)
        assert logits.shape == (len(batch.sequences), engine.vocab_size)
        assert len(sampler.sample(logits, batch.sampling_sequences)) == len(batch.sequences)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_engine_sizes_its_cache_by_profiling(llama) -> None:
    """A small utilization: the tiny model's blocks are small, and one Block object per
    block would make a 90% cache of a large GPU slow to build."""
    cache = CacheConfig(block_size=64, gpu_memory_utilization=0.05)
    engine = LLMEngine(EngineConfig(ModelConfig(str(llama.path)), cache, device="cuda"))
    total = torch.cuda.mem_get_info()[1]
    assert engine.kv_cache.num_blocks * 64 > engine.max_model_len
    assert torch.cuda.memory_reserved() <= 0.05 * total
