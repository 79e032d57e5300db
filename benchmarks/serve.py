"""`protoserve bench serve`: online serving, like vLLM's `bench serve`. Streams requests
at a Poisson rate (or all at once) under a concurrency cap to a running server, or starts
the servers itself for a model: `protoserve serve` (measured through the REST bridge and
straight over gRPC) and `transformers serve` on the same directory as the baseline, one
server at a time; optionally the engine offline on the same requests as the reference.
protoserve's backends and the offline engine are measured side by side, in turn within
each run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
from pathlib import Path

import aiohttp
from tqdm import tqdm

from benchmarks import machine, report, serve_report, servers
from benchmarks.clients import GrpcGenerate, OpenAICompletions, drive
from benchmarks.workload import (
    BenchRequest,
    TextPrompts,
    WorkloadSpec,
    load_tokenizer,
    model_prompt_ids,
    sample_requests,
)

CB_PAGE = 256


def run(args: argparse.Namespace) -> int:
    from benchmarks.models import resolve_model  # the tokenizer is read even when remote

    remote = bool(args.base_url or args.grpc_target)
    model_dir = resolve_model(args.model, args.model_root)
    out = machine.results_dir(args.out_dir, "serve")
    bench = _ServeBench(args, model_dir, out)
    try:
        if remote:
            bench.measure_remote()
        else:
            bench.measure_launched()
    finally:
        bench.bar.close()
    results = bench.save(complete=True)
    if not args.no_plot:
        report.plot_serve(results, out / "serve.png")
    print(serve_report.text(results))
    print(f"\nresults: {out}")
    return 0


class _ServeBench:
    def __init__(self, args: argparse.Namespace, model_dir: Path, out: Path) -> None:
        self.args, self.model_dir, self.out = args, model_dir, out
        self.spec = WorkloadSpec(
            args.num_prompts, args.min_prompt_len, args.max_prompt_len, args.output_len, args.seed
        )
        tokenizer = load_tokenizer(model_dir)
        self.text = TextPrompts.from_tokenizer(tokenizer) if args.prompt_format == "text" else None
        ids = self.text.token_ids if self.text else model_prompt_ids(model_dir)
        self.request_sets = [sample_requests(self.spec.for_run(r), ids) for r in range(args.runs)]
        self.runs: dict[str, list[dict]] = {}
        self.offline: list = []
        self.server_state: dict[str, dict] = {}  # per launched server: peak RSS, KV at the end
        self.machine = machine.machine_info()
        self.bar = tqdm(total=0, unit="req", desc="bench serve")

    def prompt(self, request: BenchRequest) -> str | list[int]:
        return self.text.text(request.prompt_ids) if self.text else request.prompt_ids

    # -- systems -------------------------------------------------------------------------
    def offline_engine(self):
        """The engine in this process for the offline reference: same requests, batch
        capped at the concurrency."""
        import torch

        from benchmarks import engine_bench

        torch.set_num_threads(self.args.threads or len(os.sched_getaffinity(0)))
        settings = engine_bench.EngineSettings(
            **self._engine_flags(offline=True), device=self.args.device
        )
        self.bar.set_postfix_str("offline engine: loading")
        engine = engine_bench.build_engine(self.model_dir, settings)
        engine_bench.generate(engine, self._warmup_requests(), "warmup")
        return engine

    def measure_launched(self) -> None:
        name = "bench"
        http, grpc = servers.free_port(), servers.free_port()
        command = servers.protoserve_command(
            self.model_dir, name, http, grpc, self.args.device, self._engine_flags(offline=False)
        )
        with self._server("protoserve", command, f"http://127.0.0.1:{http}",
                          f"127.0.0.1:{grpc}", name) as server:  # fmt: skip
            engine = self.offline_engine() if self.args.offline_reference else None
            asyncio.run(self._side_by_side(server, engine))
            del engine
            self.server_state["protoserve"] = {
                "peak_rss_mib": servers.peak_rss_mib(server.process.pid),
                "engine_after_runs": servers.engine_state(server.grpc_target, name),
            }
        for mode in self.args.transformers:
            port = servers.free_port()
            command = servers.transformers_command(
                self.model_dir,
                port,
                mode,
                self.args.transformers_attn,
                self.args.device,
                self._cb_flags(),
            )
            with self._server(f"transformers_{mode}", command, f"http://127.0.0.1:{port}",
                              None, str(self.model_dir)) as server:  # fmt: skip
                self._measure(f"transformers_serve_{mode}", server, "transformers")
                rss = servers.peak_rss_mib(server.process.pid)
                self.server_state[f"transformers_{mode}"] = {"peak_rss_mib": rss}

    def measure_remote(self) -> None:
        model = self.args.served_model_name or ""
        if self.args.base_url:
            server = servers.Server("remote", self.args.base_url, None, model, None, Path())
            self._measure("remote_openai", server, "openai")
        if self.args.grpc_target:
            server = servers.Server("remote", "", self.args.grpc_target, model, None, Path())
            self._measure("remote_grpc", server, "grpc")

    def _server(self, name, command, http_url, grpc_target, model):
        self.bar.set_postfix_str(f"starting {name}")
        threads = self.args.threads
        env = {"OMP_NUM_THREADS": str(threads)} if threads else None
        return servers.running(
            name, command, http_url, grpc_target, model, self.out, self.args.startup_timeout, env
        )

    # -- measuring -----------------------------------------------------------------------
    def _measure(self, system: str, server: servers.Server, backend: str) -> None:
        self._grow_bar(len(self.request_sets) * self.spec.num_requests)
        asyncio.run(self._measure_async(system, server, backend))
        self.save(complete=False)  # a checkpoint: an interrupted run keeps what it measured

    def save(self, complete: bool) -> dict:
        results = {**serve_report.results(self), "complete": complete}
        machine.write_json(self.out / "results.json", results)
        return results

    async def _measure_async(self, system: str, server: servers.Server, backend: str) -> None:
        async with _client(server, backend) as send:
            await self._warm_up(system, send)
            for run, requests in enumerate(self.request_sets):
                await self._run_once(system, send, run, requests)

    async def _side_by_side(self, server: servers.Server, engine) -> None:
        """protoserve's backends (and the offline engine) measured in turn within each run,
        the order rotated from run to run: this machine's speed drifts by tens of percent
        over minutes, and systems measured one after the other would each get a different
        machine (the first one on a fresh server was also slower)."""
        from benchmarks import engine_bench

        systems = [f"protoserve_{backend}" for backend in self.args.backends]
        runs = len(self.request_sets)
        self._grow_bar(runs * self.spec.num_requests * (len(systems) + (engine is not None)))
        async with contextlib.AsyncExitStack() as stack:
            senders = {}
            for system, backend in zip(systems, self.args.backends, strict=True):
                senders[system] = await stack.enter_async_context(_client(server, backend))
                await self._warm_up(system, senders[system])
            order = systems + (["offline_engine"] if engine is not None else [])
            for run, requests in enumerate(self.request_sets):
                shift = run % len(order)
                for system in order[shift:] + order[:shift]:
                    if system == "offline_engine":
                        self.bar.set_postfix_str(f"offline engine: run {run}")
                        self.offline.append(engine_bench.generate(
                            engine, requests, f"ref{run}", lambda: self.bar.update(1)
                        ))  # fmt: skip
                    else:
                        await self._run_once(system, senders[system], run, requests)
                self.save(complete=False)

    async def _warm_up(self, system: str, send) -> None:
        self.bar.set_postfix_str(f"{system}: warm-up")
        await asyncio.gather(*(send(r, self.prompt(r)) for r in self._warmup_requests()))

    async def _run_once(self, system: str, send, run: int, requests) -> None:
        self.bar.set_postfix_str(f"{system}: run {run}")
        load = os.getloadavg()[0]
        results, seconds = await drive(
            send, requests, self.prompt, self.args.request_rate, self.args.max_concurrency,
            seed=self.spec.seed + run, on_done=lambda: self.bar.update(1),
        )  # fmt: skip
        record = serve_report.run_record(results, seconds)
        self.runs.setdefault(system, []).append({**record, "loadavg_1m": load})

    # -- settings ------------------------------------------------------------------------
    def _engine_flags(self, offline: bool) -> dict:
        args = self.args
        flags = {
            "max_model_len": args.max_model_len, "max_num_seqs": args.max_num_seqs,
            "max_num_batched_tokens": args.max_num_batched_tokens,
            "block_size": args.block_size, "kv_cache_memory": args.kv_cache_memory,
        }  # fmt: skip
        if offline and args.max_concurrency > 0:
            flags["max_num_seqs"] = min(args.max_num_seqs or math.inf, args.max_concurrency)
        return flags

    def _cb_flags(self) -> dict:
        largest = max(
            sum(-(-(r.prompt_len + r.output_len) // CB_PAGE) for r in requests)
            for requests in self.request_sets
        )
        return {
            "num_blocks": largest + 8,
            "max_batch_tokens": self.args.max_num_batched_tokens or 2048,
        }

    def _warmup_requests(self) -> list[BenchRequest]:
        """Short requests, as many as the concurrency allows: every connection the run
        will use is open (and the servers warm) before the clock starts."""
        ids = self.text.token_ids if self.text else model_prompt_ids(self.model_dir)
        count = min(self.args.max_concurrency or 8, self.spec.num_requests, 64)
        return sample_requests(WorkloadSpec(count, 16, 32, 4, seed=-1), ids)

    def _grow_bar(self, count: int) -> None:
        self.bar.total += count
        self.bar.refresh()


@contextlib.asynccontextmanager
async def _client(server: servers.Server, backend: str):
    """Each backend's requests carry their own cache_salt: the backends measured on one
    server send the same prompts, and without it the second would find them all in the
    prefix cache the first filled (its prefills skipped, its figures inflated)."""
    salt = f"bench-{backend}"
    if backend == "grpc":
        client = GrpcGenerate(server.grpc_target, server.model, salt)
        try:
            yield client
        finally:
            await client.close()
        return
    connector = aiohttp.TCPConnector(limit=0)  # a connection per concurrent stream
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0)
    # read_bufsize: the longest SSE line (the first chunk carries the prompt's token ids)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, read_bufsize=1 << 20
    ) as http:
        flavor = "transformers" if backend == "transformers" else "protoserve"
        yield OpenAICompletions(server.http_url, server.model, flavor, http, salt)
