"""service/metrics.py and service/request_meter.py without a model: engine stats become
vLLM's gauges and counters at scrape time; a metered request feeds TTFT, inter-token and
end-to-end latency, token counters and successes by finish reason (a caller that went
away counts as abort); --disable-log-requests silences the log line only."""

from __future__ import annotations

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from engine.outputs import EngineStats
from service import request_meter
from service.metrics import ServiceMetrics, kv_cache_usage
from service.request_meter import CANCELLED, RequestMeter

STATS = EngineStats(
    num_running=3, num_waiting=2, num_kv_blocks_total=10, num_kv_blocks_free=4, block_size=16,
    prefix_cache_queries=100, prefix_cache_hits=40, num_preemptions=7,
)  # fmt: skip


def samples(metrics: ServiceMetrics) -> dict:
    text, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def labels(**extra: str) -> tuple:
    return tuple(sorted({"model_name": "m", "engine": "0", **extra}.items()))


def test_engine_stats_are_read_at_scrape_time() -> None:
    metrics = ServiceMetrics(lambda: [("m", STATS)])
    got = samples(metrics)
    assert got[("vllm:num_requests_running", labels())] == 3
    assert got[("vllm:num_requests_waiting", labels())] == 2
    assert got[("vllm:kv_cache_usage_perc", labels())] == 0.6
    assert got[("vllm:prefix_cache_queries_total", labels())] == 100
    assert got[("vllm:prefix_cache_hits_total", labels())] == 40
    assert got[("vllm:num_preemptions_total", labels())] == 7
    assert any(name == "process_resident_memory_bytes" for name, _ in got)
    assert kv_cache_usage(EngineStats(0, 0, 0, 0, 16)) == 0.0  # pooling: no KV cache


@pytest.fixture
def default_structlog(monkeypatch):
    """structlog's defaults (an earlier test may have configured a level above info, and
    cached loggers bypass capture_logs), restored afterwards."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    monkeypatch.setattr(request_meter, "log", structlog.get_logger("test_service_metrics"))
    yield
    structlog.configure(**saved)


def test_a_metered_request_feeds_the_histograms_and_counters(default_structlog) -> None:
    metrics = ServiceMetrics(lambda: [])
    meter = RequestMeter("m", metrics.requests, log_requests=False)
    clock = meter.start("r1", prompt_tokens=5)
    for _ in range(4):
        clock.tokens(0, 1)
    clock.tokens(1, 2)
    meter.finish_generation(clock, ["length", CANCELLED], cached_tokens=3)
    got = samples(metrics)
    assert got[("vllm:prompt_tokens_total", labels())] == 10  # per engine request (choice)
    assert got[("vllm:generation_tokens_total", labels())] == 6
    assert got[("vllm:prompt_tokens_cached_total", labels())] == 3
    assert got[("vllm:request_success_total", labels(finished_reason="length"))] == 1
    assert got[("vllm:request_success_total", labels(finished_reason="abort"))] == 1
    assert got[("vllm:time_to_first_token_seconds_count", labels())] == 2
    assert got[("vllm:inter_token_latency_seconds_count", labels())] == 3
    assert got[("vllm:e2e_request_latency_seconds_count", labels())] == 2
    assert got[("vllm:request_generation_tokens_sum", labels())] == 6

    with capture_logs() as silenced:
        meter.finish_pooling(meter.start("p1", 7), [3, 4], "stop")
    got = samples(metrics)
    assert got[("vllm:request_success_total", labels(finished_reason="stop"))] == 2
    assert got[("vllm:prompt_tokens_total", labels())] == 17
    assert got[("vllm:time_to_first_token_seconds_count", labels())] == 2  # none for pooling
    assert not silenced  # --disable-log-requests
    with capture_logs() as logged:
        RequestMeter("m").finish_pooling(RequestMeter("m").start("p2", 1), [1], "stop")
    assert [r["event"] for r in logged] == ["request finished"]  # logged by default
    assert logged[0]["request_id"] == "p2" and logged[0]["inputs"] == 1
