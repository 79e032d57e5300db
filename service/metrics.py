"""The service's Prometheus metrics, under vLLM's names and meanings (labels `model_name`,
the first served name, and `engine`, the engine index: one engine per model, so "0").

Engine gauges and counters (requests running / waiting, KV-cache usage, prefix-cache
queries and hits, tokens computed) are read from each engine's stats when scraped;
per-request histograms and counters (TTFT, inter-token latency, end-to-end latency,
prompt / generation tokens, successes by finish reason) are observed by the request
meter (service/request_meter.py) when a request ends. Rendered by MetricsService.GetMetrics
(the bridge's /metrics) and on --metrics-port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from engine.outputs import EngineStats

LABELS = ("model_name", "engine")
ENGINE_INDEX = "0"

# vLLM's buckets (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
TOKEN_BUCKETS = tuple(m * 10**e for e in range(6) for m in (1, 2, 5))  # 1 .. 500k


@dataclass(frozen=True)
class RequestRecord:
    """What one engine request did, as the meter saw it (times in seconds)."""

    model_name: str
    prompt_tokens: int
    generation_tokens: int
    finish_reason: str  # stop | length | abort | error
    e2e_latency: float
    # Generation only: arrival -> first token, and the gaps between later tokens.
    time_to_first_token: float | None = None
    inter_token_latencies: tuple[float, ...] = ()
    cached_tokens: int = 0


class RequestMetrics:
    """The per-request families; `observe` records one finished engine request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, *extra: str) -> Counter:
            return Counter(name, doc, [*LABELS, *extra], registry=registry)

        def histogram(name: str, doc: str, buckets: tuple) -> Histogram:
            return Histogram(name, doc, LABELS, buckets=buckets, registry=registry)

        self.prompt_tokens = counter("vllm:prompt_tokens", "Prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Generation tokens processed.")
        self.cached_tokens = counter(
            "vllm:prompt_tokens_cached", "Prompt tokens served from the prefix cache."
        )
        self.success = counter(
            "vllm:request_success", "Finished requests, by finish reason.", "finished_reason"
        )
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds", "Arrival to first token.", TTFT_BUCKETS
        )
        self.itl = histogram(
            "vllm:inter_token_latency_seconds", "Gap between output tokens.", ITL_BUCKETS
        )
        self.tpot = histogram(
            "vllm:request_time_per_output_token_seconds",
            "Mean time per output token of a request (after the first).",
            ITL_BUCKETS,
        )
        self.e2e = histogram(
            "vllm:e2e_request_latency_seconds", "Arrival to finish.", LATENCY_BUCKETS
        )
        self.request_prompt = histogram(
            "vllm:request_prompt_tokens", "Prompt tokens of a request.", TOKEN_BUCKETS
        )
        self.request_generation = histogram(
            "vllm:request_generation_tokens", "Generated tokens of a request.", TOKEN_BUCKETS
        )

    def observe(self, record: RequestRecord) -> None:
        labels = (record.model_name, ENGINE_INDEX)
        self.prompt_tokens.labels(*labels).inc(record.prompt_tokens)
        self.generation_tokens.labels(*labels).inc(record.generation_tokens)
        self.cached_tokens.labels(*labels).inc(record.cached_tokens)
        self.success.labels(*labels, record.finish_reason).inc()
        self.e2e.labels(*labels).observe(record.e2e_latency)
        self.request_prompt.labels(*labels).observe(record.prompt_tokens)
        if record.time_to_first_token is None:
            return  # pooling: no tokens generated
        self.request_generation.labels(*labels).observe(record.generation_tokens)
        self.ttft.labels(*labels).observe(record.time_to_first_token)
        itl = self.itl.labels(*labels)
        for gap in record.inter_token_latencies:
            itl.observe(gap)
        if record.inter_token_latencies:
            mean = sum(record.inter_token_latencies) / len(record.inter_token_latencies)
            self.tpot.labels(*labels).observe(mean)


class EngineCollector:
    """Gauges and cumulative counters from each engine's stats, read at scrape time."""

    def __init__(self, engines: Callable[[], list[tuple[str, EngineStats]]]) -> None:
        self._engines = engines

    def collect(self) -> Iterator[Metric]:
        running = _gauge("vllm:num_requests_running", "Requests in the running batch.")
        waiting = _gauge("vllm:num_requests_waiting", "Requests waiting to be scheduled.")
        usage = _gauge("vllm:kv_cache_usage_perc", "KV-cache usage: 1 = every block in use.")
        queries = _counter("vllm:prefix_cache_queries", "Prompt tokens looked up in the cache.")
        hits = _counter("vllm:prefix_cache_hits", "Of those, tokens found in the cache.")
        computed = _counter(
            "protoserve:tokens_computed", "Tokens run through the model (prefill and decode)."
        )
        preemptions = _counter("vllm:num_preemptions", "Requests preempted for KV blocks.")
        for name, stats in self._engines():
            labels = [name, ENGINE_INDEX]
            running.add_metric(labels, stats.num_running)
            waiting.add_metric(labels, stats.num_waiting)
            usage.add_metric(labels, kv_cache_usage(stats))
            queries.add_metric(labels, stats.prefix_cache_queries)
            hits.add_metric(labels, stats.prefix_cache_hits)
            computed.add_metric(labels, stats.num_tokens_computed)
            preemptions.add_metric(labels, stats.num_preemptions)
        yield from (running, waiting, usage, queries, hits, computed, preemptions)


def kv_cache_usage(stats: EngineStats) -> float:
    """Blocks held by requests over all blocks (cached-but-free blocks count as free)."""
    if not stats.num_kv_blocks_total:
        return 0.0  # pooling engines keep no KV cache
    return 1.0 - stats.num_kv_blocks_free / stats.num_kv_blocks_total


def _gauge(name: str, doc: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=LABELS)


def _counter(name: str, doc: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=LABELS)


class ServiceMetrics:
    """The service's registry: engine stats, per-request metrics, process and GC
    collectors. One per Service (tests start several in one process)."""

    def __init__(self, engines: Callable[[], list[tuple[str, EngineStats]]]) -> None:
        prometheus_client.disable_created_metrics()  # no `_created` twin per counter
        self.registry = CollectorRegistry()
        prometheus_client.ProcessCollector(registry=self.registry)
        prometheus_client.GCCollector(registry=self.registry)
        self.registry.register(EngineCollector(engines))
        self.requests = RequestMetrics(self.registry)
        self._http_server = None

    def render(self) -> tuple[str, str]:
        """(the text exposition, its content type)."""
        return generate_latest(self.registry).decode(), CONTENT_TYPE_PLAIN_0_0_4

    def serve(self, host: str, port: int) -> int:
        """GET /metrics on host:port (0: a free port) in a daemon thread; the port."""
        server, _ = prometheus_client.start_http_server(port, addr=host, registry=self.registry)
        self._http_server = server
        return server.server_address[1]

    def close(self) -> None:
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None
