"""Sizing the KV cache on CUDA: what is left of `gpu_memory_utilization` x the device's
memory once the weights are loaded and a profiling forward pass at the step's token
budget has run, measured with torch.cuda memory stats. Nothing here runs on CPU; the
arithmetic and the dummy batches are plain functions, tested there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.sampling_params import SamplingParams
from engine.scheduler_output import ScheduledSequence, SchedulerOutput

# Sampling that takes the sampler's costliest path (temperature, top-k and top-p: a sort).
_PROFILE_PARAMS = SamplingParams(temperature=1.0, top_k=50, top_p=0.9)


@dataclass(frozen=True)
class CudaMemory:
    """Device memory in bytes, read right after the profiling pass."""

    total: int  # the device's memory
    free: int  # free as the driver sees it
    reserved: int  # held by torch's caching allocator
    peak_allocated: int  # torch's peak since the profile began: weights + activations

    @property
    def in_use(self) -> int:
        """Outside torch's pool (CUDA context, libraries, other processes) plus torch's
        peak: what the engine needs before any KV block."""
        return (self.total - self.free - self.reserved) + self.peak_allocated


def kv_cache_budget(utilization: float, memory: CudaMemory) -> int:
    """Bytes for KV blocks: utilization x total, less what is in use."""
    budget = int(utilization * memory.total) - memory.in_use
    if budget <= 0:
        raise ValueError(
            f"no memory left for the KV cache: gpu_memory_utilization={utilization} allows "
            f"{int(utilization * memory.total) / 2**30:.2f} GiB and the weights plus a "
            f"profiling pass already use {memory.in_use / 2**30:.2f} GiB; raise "
            "gpu_memory_utilization or lower max_num_batched_tokens / max_num_seqs"
        )
    return budget


def read_cuda_memory(device: torch.device) -> CudaMemory:
    free, total = torch.cuda.mem_get_info(device)
    return CudaMemory(
        total=total,
        free=free,
        reserved=torch.cuda.memory_reserved(device),
        peak_allocated=torch.cuda.max_memory_allocated(device),
    )


def profile_kv_cache_budget(
    forward: Callable[[], object], device: torch.device, utilization: float
) -> int:
    """Run `forward` (the profiling pass) from a clean peak and size the KV budget."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    forward()
    torch.cuda.synchronize(device)
    return kv_cache_budget(utilization, read_cuda_memory(device))


def profile_batches(
    max_num_batched_tokens: int, max_num_seqs: int, max_model_len: int, block_size: int
) -> list[SchedulerOutput]:
    """Dummy steps at the token budget: the longest chunk at the end of the longest
    context (attention's peak), then the budget spread over as many sequences as a step
    holds, all sampling (the logits' and sampler's peak)."""
    tokens = min(max_num_batched_tokens, max_num_seqs * max_model_len)
    chunk = min(tokens, max_model_len)
    num_seqs = min(max_num_seqs, tokens)
    spread = [tokens // num_seqs + (i < tokens % num_seqs) for i in range(num_seqs)]
    return [
        _batch([(max_model_len - chunk, chunk)], block_size),
        _batch([(0, n) for n in spread], block_size),
    ]


def num_profile_blocks(batches: list[SchedulerOutput]) -> int:
    """KV blocks the profiling runner needs for these batches."""
    return 1 + max(max(s.block_ids) for b in batches for s in b.sequences)


def _batch(spans: list[tuple[int, int]], block_size: int) -> SchedulerOutput:
    """One sequence per (start_position, num_new_tokens), each on its own blocks."""
    sequences, next_block = [], 0
    for index, (start, num_new) in enumerate(spans):
        num_blocks = -(-(start + num_new) // block_size)
        sequences.append(
            ScheduledSequence(
                request_id=f"profile-{index}",
                token_ids=[0] * num_new,
                start_position=start,
                block_ids=list(range(next_block, next_block + num_blocks)),
                samples=True,
                sampling_params=_PROFILE_PARAMS,
                num_output_tokens=0,
            )
        )
        next_block += num_blocks
    return SchedulerOutput(sequences, [])
