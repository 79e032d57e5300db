"""From raw measurements to the results JSON (summaries, ratios, targets) and the text
table printed at the end; the PNG plots are in plots.py."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from benchmarks import machine
from benchmarks.stats import distribution, median, ratio, spread

DECODE_TARGET = 1.25  # engine decode step <= 1.25 x the linear layers alone
PREFIX_TARGET = 5.0  # TTFT of the first request >= 5 x that of the second (cached prefix)
BATCHED_TARGET = 1.5  # engine output tok/s >= 1.5 x transformers' best batched path
SEQUENTIAL_TARGET = 8.0  # ... and >= 8 x one-at-a-time generate


def plot_throughput(results: dict, path: Path) -> None:
    from benchmarks import plots

    plots.throughput(results, path)


def plot_serve(results: dict, path: Path) -> None:
    from benchmarks import plots

    plots.serve(results, path)


def system_summary(runs: list) -> dict:
    summary = {
        "runs": [r.as_dict() for r in runs],
        "output_tok_s": spread([r.output_tok_s for r in runs]),
        "total_tok_s": spread([r.total_tok_s for r in runs]),
        "seconds": spread([r.seconds for r in runs]),
    }
    ttft = [t for r in runs for t in r.ttft_s]
    if ttft:
        summary["ttft_s"] = distribution(ttft)
    return summary


def throughput_results(bench) -> dict:
    systems = {name: system_summary(runs) for name, runs in bench.runs.items()}
    decode, prefix = decode_summary(bench.decode), prefix_summary(bench.prefix)
    return {
        "command": "throughput",
        "config": _jsonable_args(bench.args),
        "versions": machine.versions(),
        "machine": {**bench.machine, "loadavg_at_end": list(os.getloadavg())},
        "model": model_facts(bench.model_dir),
        "workload": dataclasses.asdict(bench.spec),
        "engine_settings": dataclasses.asdict(bench.settings),
        "engine_config": repr(bench.engine.config),
        "engine_attention_backend": type(getattr(bench.engine.runner, "backend", None)).__name__,
        "systems": systems,
        "best_static_batch": best_static(systems),
        "ratios": engine_ratios(systems),
        "decode_step": decode,
        "prefix_cache": prefix,
        "kv_cache": bench.kv,
        "peak_rss_mib": bench.rss,
        "targets": {
            **throughput_targets(systems),
            "decode_step_over_linear": _target(decode["ratio"], "<=", DECODE_TARGET),
            "prefix_ttft_speedup": _target(prefix["ratio"], ">=", PREFIX_TARGET),
        },
    }


def best_batched(systems: dict) -> str | None:
    """transformers' fastest batched path: a static batch size or continuous batching."""
    batched = [n for n in systems if n.startswith(("hf_static_b", "hf_continuous_batching"))]
    return max(batched, key=lambda n: systems[n]["output_tok_s"]["median"], default=None)


def throughput_targets(systems: dict) -> dict:
    """engine / baseline output tok/s (medians) against the targets, for the baselines run."""
    if "engine" not in systems:
        return {}
    ours = systems["engine"]["output_tok_s"]["median"]
    targets = {}
    if (best := best_batched(systems)) is not None:
        value = ratio(ours, systems[best]["output_tok_s"]["median"])
        targets["engine_over_best_batched"] = {
            **_target(value, ">=", BATCHED_TARGET),
            "baseline": best,
        }
    if "hf_sequential" in systems:
        value = ratio(ours, systems["hf_sequential"]["output_tok_s"]["median"])
        targets["engine_over_sequential"] = _target(value, ">=", SEQUENTIAL_TARGET)
    return targets


def best_static(systems: dict) -> str | None:
    static = [n for n in systems if n.startswith("hf_static_b")]
    return max(static, key=lambda n: systems[n]["output_tok_s"]["median"], default=None)


def engine_ratios(systems: dict, reference: str = "engine") -> dict[str, float]:
    """reference / baseline output tok/s (medians), for every other system."""
    if reference not in systems:
        return {}
    ours = systems[reference]["output_tok_s"]["median"]
    return {
        f"{reference}/{name}": ratio(ours, summary["output_tok_s"]["median"])
        for name, summary in systems.items()
        if name != reference
    }


def decode_summary(runs: list[dict]) -> dict:
    """Engine step over the linear floor (the checkpoint's linear layers, `F.linear` each);
    also over the floor of the same weights computed the way the engine computes them
    (oneDNN-packed on a float32 CPU), which leaves only attention, norms, sampling and
    bookkeeping in the margin."""
    step_medians = [median(r["step_s"]) for r in runs]
    summary = {"runs": runs, "engine_step_s": spread(step_medians)}
    for key, name in (("linear_s", ""), ("linear_engine_s", "_engine")):
        floors = [median(r[key]) for r in runs if key in r]
        if len(floors) != len(runs):
            continue
        summary[f"linear{name}_only_s"] = spread(floors)
        summary[f"ratio{name}"] = ratio(median(step_medians), median(floors))
        summary[f"ratio{name}_per_run"] = spread(
            [ratio(s, f) for s, f in zip(step_medians, floors, strict=True)]
        )
    summary["batch_sizes_seen"] = sorted({b for r in runs for b in r["batch_sizes"]})
    return summary


def prefix_summary(runs: list[dict]) -> dict:
    first = [r["ttft_first_s"] for r in runs]
    second = [r["ttft_second_s"] for r in runs]
    return {
        "runs": runs,
        "ttft_first_s": spread(first),
        "ttft_second_s": spread(second),
        "ratio": ratio(median(first), median(second)),
        "ratio_per_run": spread([ratio(a, b) for a, b in zip(first, second, strict=True)]),
        "cached_tokens_second": spread([r["cached_tokens_second"] for r in runs]),
    }


def model_facts(model_dir: Path) -> dict:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    recipe = Path(model_dir) / "bench_model.json"
    return {
        "dir": str(model_dir),
        "config": config,
        "recipe": json.loads(recipe.read_text()) if recipe.is_file() else None,
        "weights_bytes": sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors")),
    }


def _target(value: float, op: str, bound: float) -> dict:
    met = value <= bound if op == "<=" else value >= bound
    return {"value": value, "target": f"{op} {bound}", "met": bool(met)}


def _met(target: dict) -> str:
    return "met" if target["met"] else "NOT met"


def _jsonable_args(args) -> dict:
    return {k: v for k, v in vars(args).items() if not callable(v)}


# -- text ----------------------------------------------------------------------------------
def _fmt(s: dict, scale: float = 1.0, digits: int = 1) -> str:
    return (
        f"{s['median'] * scale:.{digits}f} [{s['min'] * scale:.{digits}f}, "
        f"{s['max'] * scale:.{digits}f}]"
    )


def systems_table(systems: dict, ratios: dict, reference: str) -> list[str]:
    lines = [f"{'system':<38}{'output tok/s':>28}{'total tok/s':>32}{'ratio':>9}"]
    for name, s in systems.items():
        r = ratios.get(f"{reference}/{name}")
        lines.append(
            f"{name:<38} {_fmt(s['output_tok_s']):>27} {_fmt(s['total_tok_s']):>31}"
            f"{'' if r is None else f'{r:.2f}x':>9}"
        )
    return lines


def throughput_text(results: dict) -> str:
    w = results["workload"]
    lines = [
        f"model {results['model']['dir']}; {w['num_requests']} requests, prompts "
        f"{w['min_prompt_len']}-{w['max_prompt_len']}, outputs {w['output_len']}; "
        f"{results['config']['runs']} runs (median [min, max]); ratio = engine / system",
        *systems_table(results["systems"], results["ratios"], "engine"),
    ]
    if results["best_static_batch"]:
        lines.append(f"best static batch: {results['best_static_batch']}")
    d, p, kv = results["decode_step"], results["prefix_cache"], results["kv_cache"]
    t = results["targets"]
    for name in ("engine_over_best_batched", "engine_over_sequential"):
        if name in t:
            baseline = t[name].get("baseline", "hf_sequential")
            lines.append(f"{name} ({baseline}): {t[name]['value']:.2f}x "
                         f"(target {t[name]['target']}: {_met(t[name])})")  # fmt: skip
    lines += [
        f"decode step @ batch {results['config']['decode_batch']}: engine "
        f"{_fmt(d['engine_step_s'], 1e3, 2)} ms, linear layers alone "
        f"{_fmt(d['linear_only_s'], 1e3, 2)} ms, ratio {d['ratio']:.2f} "
        f"(target {t['decode_step_over_linear']['target']}: "
        f"{'met' if t['decode_step_over_linear']['met'] else 'NOT met'})",
        f"prefix cache ({results['config']['prefix_len']}-token shared prefix): TTFT first "
        f"{_fmt(p['ttft_first_s'], 1e3)} ms, second {_fmt(p['ttft_second_s'], 1e3)} ms, "
        f"ratio {p['ratio']:.2f}, cached tokens {p['cached_tokens_second']['median']:.0f} "
        f"(target {t['prefix_ttft_speedup']['target']}: "
        f"{'met' if t['prefix_ttft_speedup']['met'] else 'NOT met'})",
        f"KV cache: {kv['num_blocks']} blocks x {kv['block_size']} = {kv['budget_tokens']} "
        f"tokens; peak use {kv['peak_used_blocks']} blocks ({kv['peak_used_fraction']:.1%}); "
        f"all free at end: {kv['all_free_at_end']}; integrity: {kv['integrity']}",
        "peak RSS (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in results["peak_rss_mib"].items()),
    ]
    if "ratio_engine" in d:
        own = _fmt(d["linear_engine_only_s"], 1e3, 2)
        at = next(i for i, line in enumerate(lines) if line.startswith("decode step @"))
        lines.insert(at + 1, f"  with the linear layers computed as the engine computes them: "
                             f"linear {own} ms, ratio {d['ratio_engine']:.2f}")  # fmt: skip
    return "\n".join(lines)
