"""`protoserve bench throughput`: offline generation through the engine API against
transformers baselines in the same process, on the same model and request sets; plus the
decode-step microbenchmark and the prefix-cache TTFT. Each measurement is repeated
(--runs) with fresh prompts per repeat; systems are interleaved within a repeat so a busy
moment on a shared machine does not land on one system only."""

from __future__ import annotations

import argparse
import gc
import os
from pathlib import Path

from tqdm import tqdm

from benchmarks import engine_bench, hf_bench, linear_bench, machine, report
from benchmarks.engine_bench import EngineSettings, GenerationRun
from benchmarks.workload import WorkloadSpec, model_prompt_ids, sample_requests


def run(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.models import resolve_model

    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    model_dir = resolve_model(args.model, args.model_root)
    out = machine.results_dir(args.out_dir, "throughput")
    bench = _Bench(args, model_dir, out / "results.json")
    try:
        bench.measure_all()
    finally:
        bench.bar.close()
    results = bench.save(complete=True)
    if not args.no_plot:
        report.plot_throughput(results, out / "throughput.png")
    print(report.throughput_text(results))
    print(f"\nresults: {out}")
    return 0


class _Bench:
    def __init__(self, args: argparse.Namespace, model_dir: Path, results_path: Path) -> None:
        self.args, self.model_dir, self.results_path = args, model_dir, results_path
        self.spec = WorkloadSpec(
            args.num_requests, args.min_prompt_len, args.max_prompt_len, args.output_len,
            args.seed,
        )  # fmt: skip
        self.token_ids = model_prompt_ids(model_dir)
        self.settings = EngineSettings(
            max_model_len=args.max_model_len, max_num_seqs=args.max_num_seqs,
            max_num_batched_tokens=args.max_num_batched_tokens, block_size=args.block_size,
            kv_cache_memory=args.kv_cache_memory, enable_prefix_caching=args.prefix_caching,
            device=args.device,
        )  # fmt: skip
        self.runs: dict[str, list[GenerationRun]] = {}
        self.decode: list[dict] = []
        self.prefix: list[dict] = []
        self.rss: dict[str, float] = {}
        self.peak_kv = 0
        self.machine = machine.machine_info()
        self.bar = tqdm(total=self._total_units(), unit="req", desc="bench throughput")

    # -- phases --------------------------------------------------------------------------
    def measure_all(self) -> None:
        self.bar.set_postfix_str("loading the engine")
        self.engine = engine_bench.build_engine(self.model_dir, self.settings)
        self.rss["after_engine_load"] = machine.peak_rss_mib()
        self.hf = self._load_hf()
        self._warm_up()
        for run in range(self.args.runs):
            requests = sample_requests(self.spec.for_run(run), self.token_ids)
            before = self._hf_sequential(run, requests, half=0)
            self._engine_run(run, requests)
            if before is not None:
                self._record(before.merged(self._hf_sequential(run, requests, half=1)), "hf")
            self._hf_runs(run, requests)
            self._decode_run(run)
            self._prefix_run(run)
            self.save(complete=False)  # a checkpoint: an interrupted run keeps what it measured

    def _load_hf(self) -> dict:
        if self.args.no_hf:
            return {}
        self.bar.set_postfix_str("loading transformers")
        machine.reset_peak_rss()
        device = self.args.device
        models = {"generate": hf_bench.load_model(self.model_dir, self.args.hf_attn, device)}
        for attn in self.args.hf_cb_attn:
            models[f"cb:{attn}"] = hf_bench.load_model(self.model_dir, _load_attn(attn), device)
        self.rss["after_hf_load"] = machine.peak_rss_mib()
        return models

    def _warm_up(self) -> None:
        self.bar.set_postfix_str("warm-up")
        warm = sample_requests(WorkloadSpec(2, 16, 32, 4, seed=-1), self.token_ids)
        engine_bench.generate(self.engine, warm, "warmup")
        if "generate" in self.hf:
            hf_bench.static_batches(self.hf["generate"], warm, 2)

    def _engine_run(self, run: int, requests) -> None:
        self.bar.set_postfix_str(f"run {run}: engine")
        machine.reset_peak_rss()
        result = engine_bench.generate(
            self.engine, requests, f"run{run}", on_finish=lambda: self.bar.update(1)
        )
        self.peak_kv = max(self.peak_kv, result.extra["peak_kv_blocks_used"])
        self._record(result, "engine")

    def _hf_sequential(self, run: int, requests, half: int) -> GenerationRun | None:
        """One half of the one-at-a-time baseline's requests: the halves run just before and
        just after the engine's pass, so that the ratio of the two does not follow this
        machine's drift from one minute to the next."""
        if not self.hf:
            return None
        self.bar.set_postfix_str(f"run {run}: hf sequential ({half + 1}/2)")
        subset = requests[: self.args.hf_sequential_requests or len(requests)]
        middle = (len(subset) + 1) // 2
        part = subset[:middle] if half == 0 else subset[middle:]
        return hf_bench.sequential(self.hf["generate"], part, self.bar.update)

    def _hf_runs(self, run: int, requests) -> None:
        if not self.hf:
            return
        done = self.bar.update
        for size in self.args.hf_batch_sizes:
            self.bar.set_postfix_str(f"run {run}: hf static batch {size}")
            self._record(hf_bench.static_batches(self.hf["generate"], requests, size, done), "hf")
        for attn in self.args.hf_cb_attn:
            self.bar.set_postfix_str(f"run {run}: hf continuous batching ({attn})")
            scheduler = self.engine.config.scheduler
            result = hf_bench.continuous_batching(
                self.hf[f"cb:{attn}"], requests, scheduler.max_num_batched_tokens,
                scheduler.max_num_seqs, done,
            )  # fmt: skip
            result.system = f"hf_continuous_batching_{_slug(attn)}"
            self._record(result, "hf")

    def _decode_run(self, run: int) -> None:
        self.bar.set_postfix_str(f"run {run}: decode step")
        args = self.args
        spec = WorkloadSpec(args.decode_batch, args.min_prompt_len, args.max_prompt_len, 1,
                            seed=self.spec.seed + 7919 + run)  # fmt: skip
        requests = sample_requests(spec, self.token_ids)
        if not hasattr(self, "linear_weights"):
            self.linear_weights = linear_bench.linear_weights(
                self.model_dir, self.engine.dtype, self.engine.device
            )
        baselines = {
            "linear_s": linear_bench.LinearPass(self.linear_weights, args.decode_batch),
            "linear_engine_s": linear_bench.LinearPass(
                self.linear_weights, args.decode_batch, as_engine=True
            ),
        }
        measured = engine_bench.decode_step_times(
            self.engine, requests, f"decode{run}", args.decode_warmup, args.decode_steps,
            baselines,
        )  # fmt: skip
        self.decode.append(measured)
        self.bar.update(args.decode_batch)

    def _prefix_run(self, run: int) -> None:
        self.bar.set_postfix_str(f"run {run}: prefix-cache TTFT")
        seed = self.spec.seed + 104729 * (run + 1)
        self.prefix.append(
            engine_bench.prefix_ttft(
                self.engine, self.token_ids, self.args.prefix_len, self.args.prefix_suffix_len, seed
            )
        )
        self.bar.update(2)

    # -- bookkeeping ---------------------------------------------------------------------
    def _record(self, result: GenerationRun, phase: str) -> None:
        result.extra["loadavg_1m"] = os.getloadavg()[0]  # how busy the machine was
        self.runs.setdefault(result.system, []).append(result)
        self.rss[f"{phase}_runs"] = max(self.rss.get(f"{phase}_runs", 0), machine.peak_rss_mib())
        gc.collect()

    def _total_units(self) -> int:
        args = self.args
        per_run = args.num_requests + args.decode_batch + 2
        if not args.no_hf:
            sequential = min(args.hf_sequential_requests or args.num_requests, args.num_requests)
            per_run += sequential + args.num_requests * (
                len(args.hf_batch_sizes) + len(args.hf_cb_attn)
            )
        return per_run * args.runs

    def save(self, complete: bool) -> dict:
        """Write results.json from what is measured so far (the engine is idle here)."""
        self.kv = engine_bench.kv_report(self.engine, self.peak_kv)
        self.rss["process_peak"] = max(self.rss.values())
        results = {**report.throughput_results(self), "complete": complete}
        machine.write_json(self.results_path, results)
        return results


def _load_attn(cb_attn: str) -> str:
    """How to load a model for a CB attention choice ('paged|eager' is reached from eager)."""
    return "eager" if cb_attn == "paged|eager" else cb_attn


def _slug(text: str) -> str:
    return text.replace("|", "_")
