"""Offline measurements of our engine through its public API (LLMEngine driven step by
step in this thread): generation throughput, the decode step at a fixed batch against the
model's linear layers alone, and time to first token with a shared prefix."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.workload import BenchRequest, random_ids


@dataclass(frozen=True)
class EngineSettings:
    """The engine knobs a benchmark sets (None = the engine's own default)."""

    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    kv_cache_memory: int | None = None
    enable_prefix_caching: bool | None = None
    dtype: str = "float32"
    device: str = "cpu"


@dataclass
class GenerationRun:
    """One pass over a request set by one system."""

    system: str
    seconds: float
    num_requests: int
    prompt_tokens: int
    output_tokens: int
    ttft_s: list[float] = field(default_factory=list)  # per request, from submission
    extra: dict = field(default_factory=dict)

    @property
    def output_tok_s(self) -> float:
        return self.output_tokens / self.seconds

    @property
    def total_tok_s(self) -> float:
        return (self.prompt_tokens + self.output_tokens) / self.seconds

    def merged(self, other: GenerationRun) -> GenerationRun:
        """This pass and another by the same system over other requests, as one pass."""
        assert other.system == self.system, (self.system, other.system)
        return GenerationRun(
            self.system, self.seconds + other.seconds, self.num_requests + other.num_requests,
            self.prompt_tokens + other.prompt_tokens, self.output_tokens + other.output_tokens,
            self.ttft_s + other.ttft_s, {**other.extra, **self.extra},
        )  # fmt: skip

    def as_dict(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "output_tok_s": self.output_tok_s,
            "total_tok_s": self.total_tok_s,
        }


def build_engine(model_dir: Path, settings: EngineSettings):
    """An LLMEngine; settings the engine does not know (it is changing) are skipped."""
    from engine import CacheConfig, EngineConfig, LLMEngine, ModelConfig, SchedulerConfig

    values = {k: v for k, v in dataclasses.asdict(settings).items() if v is not None}
    config = EngineConfig(
        model=_known(ModelConfig, values, model_dir=str(model_dir)),
        cache=_known(CacheConfig, values),
        scheduler=_known(SchedulerConfig, values),
        device=settings.device,
    )
    return LLMEngine(config)


def _known(cls, values: dict, **fixed):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**fixed, **{k: v for k, v in values.items() if k in names and k not in fixed})


def greedy(max_tokens: int):
    from engine import SamplingParams

    return SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)


def generate(
    engine, requests: Sequence[BenchRequest], tag: str, on_finish: Callable[[], None] = lambda: None
) -> GenerationRun:
    """All requests submitted at once, stepped to completion; the clock covers submission
    to the last token. Tracks the peak of KV blocks in use."""
    started = time.perf_counter()
    ids = [f"{tag}-{i}" for i in range(len(requests))]
    for request_id, request in zip(ids, requests, strict=True):
        engine.add_request(request_id, request.prompt_ids, greedy(request.output_len))
    first: dict[str, float] = {}
    produced, peak_used = 0, 0
    while engine.has_unfinished_requests():
        outputs = engine.step()
        now = time.perf_counter()
        for output in outputs:
            produced += len(output.new_token_ids)
            first.setdefault(output.request_id, now - started)
            if output.finished:
                on_finish()
        stats = engine.stats()
        peak_used = max(peak_used, stats.num_kv_blocks_total - stats.num_kv_blocks_free)
    seconds = time.perf_counter() - started
    return GenerationRun(
        "engine", seconds, len(requests), sum(r.prompt_len for r in requests), produced,
        [first[i] for i in ids if i in first], {"peak_kv_blocks_used": peak_used},
    )  # fmt: skip


def decode_step_times(
    engine,
    requests: Sequence[BenchRequest],
    tag: str,
    warmup: int,
    steps: int,
    baselines: dict[str, Callable[[], float]] | None = None,
) -> dict:
    """Steady-state decode: every request prefilled and decoding, then `steps` timed
    engine steps (schedule, forward, sample, update) at batch len(requests). Each baseline
    (a callable returning its own seconds) runs right after every timed step, so the step
    and its baselines see the same machine (a shared 2-core box drifts by tens of percent
    within a minute); its times go under its name."""
    baselines = baselines or {}
    ids = [f"{tag}-{i}" for i in range(len(requests))]
    for request_id, request in zip(ids, requests, strict=True):  # nobody finishes: aborted
        budget = engine.max_model_len - request.prompt_len
        engine.add_request(request_id, request.prompt_ids, greedy(budget))
    decoding: set[str] = set()
    while len(decoding) < len(ids):
        decoding.update(o.request_id for o in engine.step())
    for _ in range(warmup):
        engine.step()
        for baseline in baselines.values():
            baseline()
    measured: dict[str, list] = {"step_s": [], "batch_sizes": [], **{k: [] for k in baselines}}
    for _ in range(steps):
        begin = time.perf_counter()
        outputs = engine.step()
        measured["step_s"].append(time.perf_counter() - begin)
        measured["batch_sizes"].append(len(outputs))
        for name, baseline in baselines.items():
            measured[name].append(baseline())
    for request_id in ids:
        engine.abort_request(request_id)
    return measured


def prefix_ttft(engine, token_ids: Sequence[int], prefix_len: int, suffix_len: int, seed: int):
    """Two requests sharing a `prefix_len`-token prefix, one after the other on an idle
    engine: (TTFT, cached prompt tokens) of the first and of the second."""
    prefix = random_ids(token_ids, prefix_len, seed)
    prompts = [prefix + random_ids(token_ids, suffix_len, seed + i + 1) for i in range(2)]
    first = _ttft(engine, f"prefix-{seed}-a", prompts[0])
    second = _ttft(engine, f"prefix-{seed}-b", prompts[1])
    return {
        "ttft_first_s": first[0],
        "ttft_second_s": second[0],
        "cached_tokens_first": first[1],
        "cached_tokens_second": second[1],
        "prompt_tokens": len(prompts[0]),
    }


def _ttft(engine, request_id: str, prompt: list[int]) -> tuple[float, int]:
    started = time.perf_counter()
    engine.add_request(request_id, prompt, greedy(1))
    ttft, cached = None, 0
    while engine.has_unfinished_requests():
        for output in engine.step():
            if output.request_id == request_id and ttft is None and output.new_token_ids:
                ttft = time.perf_counter() - started
                cached = getattr(output, "num_cached_tokens", 0) or 0
    assert ttft is not None, "the request produced no token"
    return ttft, cached


def kv_report(engine, peak_used_blocks: int) -> dict:
    """The KV budget against its peak use, and the end state: every block free."""
    stats = engine.stats()
    report = {
        "num_blocks": stats.num_kv_blocks_total,
        "block_size": stats.block_size,
        "budget_tokens": stats.num_kv_blocks_total * stats.block_size,
        "peak_used_blocks": peak_used_blocks,
        "peak_used_fraction": peak_used_blocks / stats.num_kv_blocks_total,
        "free_blocks_at_end": stats.num_kv_blocks_free,
        "cached_free_blocks_at_end": getattr(stats, "num_kv_blocks_cached", None),
        "all_free_at_end": stats.num_kv_blocks_free == stats.num_kv_blocks_total,
    }
    try:
        engine.check_integrity()
        report["integrity"] = "ok"
    except AssertionError as exc:
        report["integrity"] = f"failed: {exc}"
    return report
