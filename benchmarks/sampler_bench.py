"""The sampler's share of a decode step, and structured outputs' cost in throughput,
measured through LLMEngine on a benchmark model (default "small": 100M params, 32k vocab).

  python -m benchmarks.sampler_bench [--model small] [--batch 32] [--runs 3] [--threads 1]
                                     [--out results.json]

1. Sampler share: `batch` requests decoding together with repetition/presence/frequency
   penalties, top_p, top_k and logprobs (5 + 2 requested ids) on every request; per run,
   the median over decode steps of sampler time / step time. Also with no feature (greedy).
2. JSON schema throughput: the same batch generating `max_tokens` tokens unconstrained
   and with a JSON schema on every request (grammar masks from llguidance), runs of the
   two alternating, prefix caching off; output tokens per second, constrained /
   unconstrained.

Every figure is the median of `runs` runs. Targets (issue 4, at batch 32): sampler share
with the features <= 15 % of the step; JSON schema throughput >= 70 % of unconstrained.
Each is printed as met / NOT met and recorded under `targets` ({value, target, met}).
Results go to stdout as JSON too, and to `--out` when given."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks.models import resolve_model
from engine import (
    CacheConfig,
    EngineConfig,
    LLMEngine,
    ModelConfig,
    SamplingParams,
    SchedulerConfig,
)
from engine.structured import StructuredOutputSpec

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "pattern": "^[a-z]+@[a-z]+\\.com$"},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city", "zip"],
        },
        "active": {"type": "boolean"},
    },
    "required": ["name", "age", "email", "role", "tags", "address", "active"],
}
SAMPLER_SHARE_TARGET = 0.15  # sampler time / step time, features on, batch 32
JSON_THROUGHPUT_TARGET = 0.70  # JSON schema tok/s / unconstrained tok/s
FEATURES = SamplingParams(
    temperature=0.8, top_p=0.9, top_k=50, repetition_penalty=1.1, presence_penalty=0.3,
    frequency_penalty=0.2, logprobs=5, logprob_token_ids=(10, 20), ignore_eos=True,
)  # fmt: skip


def make_engine(model_dir: Path, batch: int) -> LLMEngine:
    engine = LLMEngine(
        EngineConfig(
            model=ModelConfig(str(model_dir), max_model_len=1024),
            cache=CacheConfig(block_size=16, enable_prefix_caching=False),  # no reuse across runs
            scheduler=SchedulerConfig(max_num_seqs=batch, max_num_batched_tokens=8192),
            device="cpu",
        )
    )
    from service.tokenizer import Tokenizer  # the vocabulary the grammar engine masks

    tokenizer = Tokenizer(str(model_dir))
    engine.set_tokenizer_info(tokenizer.grammar_info(engine.vocab_size, engine.eos_token_ids))
    return engine


def _add(engine: LLMEngine, batch: int, params: SamplingParams, tag: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for i in range(batch):
        prompt = torch.randint(100, engine.vocab_size - 100, (64,), generator=g).tolist()
        engine.add_request(f"{tag}-{i}", prompt, params)


def sampler_share(
    engine: LLMEngine, batch: int, params: SamplingParams, steps: int, run: int
) -> dict:
    """Median over decode steps of the sampler's time and the whole step's."""
    timings: list[float] = []
    original = engine.sampler.run

    def timed(logits, seqs):
        started = time.perf_counter()
        out = original(logits, seqs)
        timings.append(time.perf_counter() - started)
        return out

    _add(engine, batch, params, f"share{run}", seed=run)
    engine.step()  # prefill, not timed
    engine.sampler.run = timed
    timings.clear()
    step_times = []
    try:
        for _ in range(steps):
            started = time.perf_counter()
            engine.step()
            step_times.append(time.perf_counter() - started)
    finally:
        engine.sampler.run = original
    for request_id in [f"share{run}-{i}" for i in range(batch)]:
        engine.abort_request(request_id)
    shares = [s / t for s, t in zip(timings, step_times, strict=True)]
    return {
        "step_ms": statistics.median(step_times) * 1e3,
        "sampler_ms": statistics.median(timings) * 1e3,
        "share": statistics.median(shares),
    }


def throughput(engine: LLMEngine, batch: int, params: SamplingParams, run: int) -> dict:
    _add(engine, batch, params, f"tput{run}", seed=100 + run)
    started = time.perf_counter()
    tokens = 0
    while engine.has_unfinished_requests():
        tokens += sum(len(o.new_token_ids) for o in engine.step())
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "tok_s": tokens / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--model-root", default=None, help="where benchmark models are built")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12, help="decode steps timed per run")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the results JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    engine = make_engine(resolve_model(args.model, args.model_root), args.batch)
    results: dict = {"model": args.model, "batch": args.batch, "threads": args.threads}
    for name, params in (
        ("features", FEATURES),
        ("greedy", SamplingParams(temperature=0.0, ignore_eos=True)),
    ):
        runs = [sampler_share(engine, args.batch, params, args.steps, r) for r in range(args.runs)]
        results[f"sampler_{name}"] = _medians(runs)
        print(f"sampler ({name}): {_format(results[f'sampler_{name}'])}", flush=True)
    plain = SamplingParams(temperature=0.8, max_tokens=args.max_tokens, ignore_eos=True, seed=1)
    constrained = SamplingParams(
        temperature=0.8, max_tokens=args.max_tokens, seed=1,
        structured_output=StructuredOutputSpec("json", json.dumps(SCHEMA)),
    )  # fmt: skip
    modes = {"unconstrained": plain, "json_schema": constrained}
    runs: dict[str, list[dict]] = {name: [] for name in modes}
    for r in range(args.runs):  # alternating, so a change in machine load hits both
        for name, params in modes.items():
            runs[name].append(throughput(engine, args.batch, params, r))
    for name in modes:
        results[name] = _medians(runs[name])
        print(f"{name}: {_format(results[name])}", flush=True)
    results["json_schema_vs_unconstrained"] = (
        results["json_schema"]["tok_s"] / results["unconstrained"]["tok_s"]
    )
    results["targets"] = targets(results)
    for name, target in results["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        print(f"target {name}: {target['value']:.3f} {target['target']}: {verdict}", flush=True)
    if args.batch != 32:
        print(f"(the targets are set at batch 32; this run used batch {args.batch})")
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def targets(results: dict) -> dict:
    return {
        "sampler_share_with_features": _target(
            results["sampler_features"]["share"], "<=", SAMPLER_SHARE_TARGET
        ),
        "json_schema_vs_unconstrained": _target(
            results["json_schema_vs_unconstrained"], ">=", JSON_THROUGHPUT_TARGET
        ),
    }


def _target(value: float, op: str, bound: float) -> dict:
    met = value <= bound if op == "<=" else value >= bound
    return {"value": value, "target": f"{op} {bound}", "met": bool(met)}


def _medians(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"runs": runs}


def _format(result: dict) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in result.items() if k != "runs")


if __name__ == "__main__":
    raise SystemExit(main())
