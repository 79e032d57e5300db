"""llguidance against xgrammar on this machine: what chose engine/structured's backend.

  python -m benchmarks.grammar_backends [--model small] [--batch 32] [--runs 3]

For the JSON schema of benchmarks/sampler_bench.py and the model's tokenizer: the one-off
tokenizer preparation, compiling the schema (cold: no cache), and per decode step the
token masks of `batch` requests at different positions of a valid document plus
consuming one token each (sequential and with the backend's own parallel batch call).
Medians over `runs`; a backend that is not installed is skipped (xgrammar is not a
dependency: `pip install xgrammar` pulls triton)."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from transformers import AutoTokenizer

from benchmarks.models import resolve_model
from benchmarks.sampler_bench import SCHEMA

DOCUMENT = {
    "name": "Ada Lovelace", "age": 36, "email": "ada@engine.com", "role": "admin",
    "tags": ["math", "poetry"], "address": {"city": "London", "zip": "12345"}, "active": True,
}  # fmt: skip
STEPS = 40


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _steps(matchers, fill: Callable, accept: Callable, reset: Callable, tokens) -> float:
    """Median seconds of one step (fill every mask, then accept a token each); matcher i
    starts 3 i tokens into the document and wraps around."""
    positions = [(3 * i) % len(tokens) for i in range(len(matchers))]
    for matcher, position in zip(matchers, positions, strict=True):
        for token in tokens[:position]:
            accept(matcher, token)
    times = []
    for _ in range(STEPS):
        started = time.perf_counter()
        fill(matchers)
        for i, matcher in enumerate(matchers):
            if positions[i] == len(tokens):
                reset(matcher)
                positions[i] = 0
            accept(matcher, tokens[positions[i]])
            positions[i] += 1
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def llguidance_run(hf, vocab: int, batch: int, tokens: list[int]) -> dict:
    import llguidance
    import llguidance.hf
    import llguidance.torch as llt

    prepare, tokenizer = _timed(lambda: llguidance.hf.from_tokenizer(hf, vocab))
    grammar = llguidance.LLMatcher.grammar_from_json_schema(SCHEMA)
    compile_s, _ = _timed(lambda: llguidance.LLMatcher(tokenizer, grammar))
    bitmask = llt.allocate_token_bitmask(batch, vocab)
    executor = llguidance.LLExecutor()

    def run(parallel: bool) -> float:
        matchers = [llguidance.LLMatcher(tokenizer, grammar) for _ in range(batch)]

        def fill(ms):
            if parallel:
                llt.fill_next_token_bitmask_par(
                    executor, [(m, i) for i, m in enumerate(ms)], bitmask
                )
            else:
                for i, m in enumerate(ms):
                    llt.fill_next_token_bitmask(m, bitmask, i)

        return _steps(matchers, fill, lambda m, t: m.consume_token(t), lambda m: m.reset(), tokens)

    return {
        "prepare_s": prepare,
        "compile_s": compile_s,
        "step_s": run(False),
        "step_parallel_s": run(True),
    }


def xgrammar_run(hf, vocab: int, batch: int, tokens: list[int]) -> dict:
    import xgrammar as xgr

    prepare, info = _timed(lambda: xgr.TokenizerInfo.from_huggingface(hf, vocab_size=vocab))
    compiler = xgr.GrammarCompiler(info, cache_enabled=False)
    compile_s, compiled = _timed(lambda: compiler.compile_json_schema(json.dumps(SCHEMA)))
    bitmask = xgr.allocate_token_bitmask(batch, vocab)
    batched = xgr.BatchGrammarMatcher()

    def run(parallel: bool) -> float:
        matchers = [xgr.GrammarMatcher(compiled) for _ in range(batch)]

        def fill(ms):
            if parallel:
                batched.batch_fill_next_token_bitmask(ms, bitmask)
            else:
                for i, m in enumerate(ms):
                    m.fill_next_token_bitmask(bitmask, i)

        return _steps(matchers, fill, lambda m, t: m.accept_token(t), lambda m: m.reset(), tokens)

    return {
        "prepare_s": prepare,
        "compile_s": compile_s,
        "step_s": run(False),
        "step_parallel_s": run(True),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model_dir = resolve_model(args.model)
    hf = AutoTokenizer.from_pretrained(model_dir)
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    tokens = hf.encode(json.dumps(DOCUMENT), add_special_tokens=False)
    results = {"model": args.model, "batch": args.batch, "document_tokens": len(tokens)}
    for name, run in (("llguidance", llguidance_run), ("xgrammar", xgrammar_run)):
        try:
            runs = [run(hf, vocab, args.batch, tokens) for _ in range(args.runs)]
        except ImportError as exc:
            results[name] = f"not installed ({exc.name})"
            continue
        results[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(name, {k: f"{v * 1e3:.2f} ms" for k, v in results[name].items()}, flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
