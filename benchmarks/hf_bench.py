"""Hugging Face transformers baselines on the same checkpoint and request set: greedy
`generate` one request at a time, static left-padded batches of `generate`, and the
continuous-batching manager (`init_continuous_batching` / `continuous_batching_context_
manager`, which `generate_batch` wraps). Every request generates exactly its output length
(min_new_tokens = max_new_tokens; EOS disabled for continuous batching)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.engine_bench import GenerationRun
from benchmarks.workload import BenchRequest


def load_model(
    model_dir: Path, attn_implementation: str, device: str = "cpu", dtype: str = "float32"
):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=getattr(torch, dtype), attn_implementation=attn_implementation,
        local_files_only=True,
    )  # fmt: skip
    return model.to(device).eval()


def pad_token_id(model) -> int:
    config = model.generation_config
    pad = config.pad_token_id
    if pad is None:
        eos = config.eos_token_id
        pad = eos[0] if isinstance(eos, list) else eos
    return int(pad if pad is not None else 0)


def sequential(
    model, requests: Sequence[BenchRequest], on_done: Callable[[int], None] = lambda n: None
) -> GenerationRun:
    """(a) one `generate` call per request."""
    return static_batches(model, requests, 1, on_done, system="hf_sequential")


def static_batches(
    model,
    requests: Sequence[BenchRequest],
    batch_size: int,
    on_done: Callable[[int], None] = lambda n: None,
    system: str | None = None,
) -> GenerationRun:
    """(b) requests in arrival order, `batch_size` at a time, left-padded; a batch runs
    until its longest output is done (here: all are equal)."""
    import torch

    pad = pad_token_id(model)
    produced = 0
    started = time.perf_counter()
    for begin in range(0, len(requests), batch_size):
        chunk = requests[begin : begin + batch_size]
        input_ids, attention_mask = _left_pad([r.prompt_ids for r in chunk], pad, model.device)
        new = max(r.output_len for r in chunk)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                min_new_tokens=new, max_new_tokens=new, pad_token_id=pad,
            )  # fmt: skip
        produced += (out.shape[1] - input_ids.shape[1]) * len(chunk)
        on_done(len(chunk))
    seconds = time.perf_counter() - started
    return GenerationRun(
        system or f"hf_static_b{batch_size}", seconds, len(requests),
        sum(r.prompt_len for r in requests), produced, extra={"batch_size": batch_size},
    )  # fmt: skip


def _left_pad(prompts: list[list[int]], pad: int, device):
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


def continuous_batching(
    model,
    requests: Sequence[BenchRequest],
    max_batch_tokens: int,
    max_requests_per_batch: int,
    on_done: Callable[[int], None] = lambda n: None,
) -> GenerationRun:
    """(c) transformers' continuous-batching manager. Its set-up (cache allocation,
    warm-up) is outside the clock, as our engine's is; the KV cache is sized to hold
    every request at once, so it never has to evict."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    new = max(r.output_len for r in requests)
    generation = GenerationConfig(max_new_tokens=new, do_sample=False, eos_token_id=None)
    page = 256
    blocks = sum(-(-(r.prompt_len + r.output_len) // page) for r in requests) + 8
    config = ContinuousBatchingConfig(
        page_size=page, num_blocks=blocks, max_batch_tokens=max_batch_tokens,
        max_requests_per_batch=max_requests_per_batch,
    )  # fmt: skip
    with model.continuous_batching_context_manager(  # no inference_mode: it writes its tensors
        generation_config=generation, continuous_batching_config=config, block=True, timeout=30
    ) as manager:
        started = time.perf_counter()
        ids = manager.add_requests(inputs=[r.prompt_ids for r in requests], max_new_tokens=new)
        produced, errors = _collect(manager, len(ids), on_done)
        seconds = time.perf_counter() - started
    extra = {"errors": errors, "attn_implementation": model.config._attn_implementation}
    return GenerationRun(
        "hf_continuous_batching", seconds, len(requests), sum(r.prompt_len for r in requests),
        produced, extra=extra,
    )  # fmt: skip


def _collect(manager, expected: int, on_done: Callable[[int], None]) -> tuple[int, list[str]]:
    finished, produced, errors = 0, 0, []
    while finished < expected:
        result = manager.get_result(timeout=1)
        if result is None:
            if not manager.is_running():
                raise RuntimeError("transformers' continuous batching thread stopped early")
            continue
        if result.is_finished():
            finished += 1
            produced += len(result.generated_tokens)
            if result.error is not None:
                errors.append(str(result.error))
            on_done(1)
    return produced, errors
