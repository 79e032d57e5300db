"""`bench serve` numbers: one record per (system, run) with the raw per-request timings,
then per-system summaries (median over runs; latency percentiles pooled over runs),
ratios, targets and the printed table."""

from __future__ import annotations

import dataclasses
import os

from benchmarks import machine
from benchmarks.report import engine_ratios, model_facts, systems_table
from benchmarks.stats import distribution, ratio, spread

OFFLINE_TARGET = 0.9  # served output tok/s >= 90 % of the offline engine's
TRANSFORMERS_TARGET = 3.0  # served output tok/s >= 3 x transformers serve
LATENCIES = ("ttft_s", "itl_s", "tpot_s", "e2e_s")


def run_record(results: list, seconds: float) -> dict:
    ok = [r for r in results if r.ok]
    output = sum(r.output_tokens for r in ok)
    prompt = sum(r.prompt_len for r in ok)
    raw = {
        "ttft_s": [r.ttft for r in ok if r.ttft is not None],
        "itl_s": [gap for r in ok for gap in r.itl],
        "tpot_s": [r.tpot for r in ok if r.tpot is not None],
        "e2e_s": [r.e2e for r in ok],
        "sent_at_s": [r.sent_at for r in results],
        "output_tokens": [r.output_tokens for r in results],
    }
    return {
        "seconds": seconds,
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r.error for r in results if r.error})[:5],
        "prompt_tokens": prompt,
        "output_tokens": output,
        "output_tok_s": output / seconds,
        "total_tok_s": (prompt + output) / seconds,
        "request_throughput": len(ok) / seconds,
        "outputs_not_expected_length": sum(r.output_tokens != r.expected_output for r in ok),
        "prompt_token_mismatches": sum(
            r.prompt_tokens is not None and r.prompt_tokens != r.prompt_len for r in ok
        ),
        **{name: distribution(raw[name]) for name in LATENCIES},
        "raw": raw,
    }


def system_summary(runs: list[dict]) -> dict:
    pooled = {name: [v for r in runs for v in r["raw"][name]] for name in LATENCIES}
    return {
        "runs": runs,
        "output_tok_s": spread([r["output_tok_s"] for r in runs]),
        "total_tok_s": spread([r["total_tok_s"] for r in runs]),
        "request_throughput": spread([r["request_throughput"] for r in runs]),
        "failed": sum(r["failed"] for r in runs),
        **{name: distribution(pooled[name]) for name in LATENCIES},
        "raw": pooled,
    }


def offline_summary(runs: list) -> dict:
    return {
        "runs": [r.as_dict() for r in runs],
        "output_tok_s": spread([r.output_tok_s for r in runs]),
        "total_tok_s": spread([r.total_tok_s for r in runs]),
        "request_throughput": spread([r.num_requests / r.seconds for r in runs]),
        "failed": 0,
        "raw": {name: [] for name in LATENCIES},
    }


def results(bench) -> dict:
    systems = {name: system_summary(runs) for name, runs in bench.runs.items()}
    if bench.offline:
        systems["offline_engine"] = offline_summary(bench.offline)
    args = bench.args
    rate = "inf" if args.request_rate == float("inf") else args.request_rate
    return {
        "command": "serve",
        "config": {k: v for k, v in vars(args).items() if not callable(v)},
        "versions": machine.versions(),
        "machine": {**bench.machine, "loadavg_at_end": list(os.getloadavg())},
        "model": str(bench.model_dir),
        "model_facts": model_facts(bench.model_dir),
        "workload": dataclasses.asdict(bench.spec),
        "load": f"rate {rate} req/s, max concurrency {args.max_concurrency or 'unlimited'}",
        "systems": systems,
        "ratios": _ratios(systems),
        "targets": _targets(systems),
        "peak_rss_mib_client": machine.peak_rss_mib(),
        "servers": bench.server_state,
    }


def ours(systems: dict) -> list[str]:
    """The systems measured against the others (ours, launched or already running)."""
    return [n for n in systems if n.startswith(("protoserve_", "remote_"))]


def _ratios(systems: dict) -> dict:
    found = {}
    for name in ours(systems):
        found.update(engine_ratios(systems, reference=name))
    return found


def _best_transformers(systems: dict) -> str | None:
    names = [n for n in systems if n.startswith("transformers_serve")]
    return max(names, key=lambda n: systems[n]["output_tok_s"]["median"], default=None)


def _targets(systems: dict) -> dict:
    bridge = next((n for n in ("protoserve_openai", "remote_openai") if n in systems), None)
    if bridge is None:
        return {}
    value = systems[bridge]["output_tok_s"]["median"]
    targets = {}
    if "offline_engine" in systems:
        offline = ratio(value, systems["offline_engine"]["output_tok_s"]["median"])
        targets["bridge_vs_offline"] = {"value": offline, "target": f">= {OFFLINE_TARGET}",
                                        "met": offline >= OFFLINE_TARGET}  # fmt: skip
    best = _best_transformers(systems)
    if best:
        speedup = ratio(value, systems[best]["output_tok_s"]["median"])
        targets["bridge_vs_transformers_serve"] = {
            "value": speedup, "baseline": best, "target": f">= {TRANSFORMERS_TARGET}",
            "met": speedup >= TRANSFORMERS_TARGET,
        }  # fmt: skip
    return targets


def text(results: dict) -> str:
    w = results["workload"]
    reference = (ours(results["systems"]) or [""])[0]
    lines = [
        f"model {results['model']}; {w['num_requests']} requests per run, prompts "
        f"{w['min_prompt_len']}-{w['max_prompt_len']}, outputs {w['output_len']}; "
        f"{results['load']}; {results['config']['runs']} runs (median [min, max])",
        f"ratio = {reference} / system",
        *systems_table(results["systems"], results["ratios"], reference),
        f"{'latency (ms), pooled over runs':<38}{'TTFT p50/p95/p99':>22}{'ITL p50/p95/p99':>22}"
        f"{'E2E p50/p95/p99':>26}",
    ]
    for name, s in results["systems"].items():
        if not s.get("ttft_s", {}).get("n"):
            continue
        lines.append(
            f"{name:<38}{_pcts(s['ttft_s']):>22}{_pcts(s['itl_s']):>22}{_pcts(s['e2e_s']):>26}"
        )
    for name, s in results["systems"].items():
        if s["failed"]:
            lines.append(f"{name}: {s['failed']} failed requests (see results.json)")
    for name, t in results["targets"].items():
        verdict = "met" if t["met"] else "NOT met"
        lines.append(f"target {name}: {t['value']:.2f} ({t['target']}: {verdict})")
    for name, state in results.get("servers", {}).items():
        rss = ", ".join(f"{proc} {mib:.0f}" for proc, mib in state["peak_rss_mib"].items())
        lines.append(f"{name} server peak RSS (MiB): {rss or 'n/a'}")
        if engine := state.get("engine_after_runs"):
            lines.append(f"{name} after the runs: {engine['kv_blocks_free']}/"
                         f"{engine['kv_blocks_total']} KV blocks free, "
                         f"{engine['num_running']} running")  # fmt: skip
    return "\n".join(lines)


def _pcts(d: dict) -> str:
    return f"{d['median'] * 1e3:.0f}/{d['p95'] * 1e3:.0f}/{d['p99'] * 1e3:.0f}"
