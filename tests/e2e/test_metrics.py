"""Observability through the real servers: /metrics on the bridge carries the service's
vLLM-named metrics (and the bridge's HTTP metrics) and they move with traffic; the
"request finished" log line; X-Request-Id echoed (the session server runs with
--enable-request-id-headers)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import EMBED_MODEL

pytestmark = pytest.mark.e2e

SERVICE_METRICS = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:request_success",
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_prompt_tokens",
    "vllm:request_generation_tokens",
    "process_resident_memory_bytes",
)


def scrape(servers) -> dict[tuple[str, tuple], float]:
    reply = httpx.get(f"{servers.http_url}/metrics", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def test_metrics_are_named_like_vllm_and_move(servers) -> None:
    before = scrape(servers)
    names = {n for n, _ in before}
    for family in ("vllm:num_requests_running", "vllm:kv_cache_usage_perc"):
        assert family in names
    completion = httpx.post(
        f"{servers.http_url}/v1/completions",
        json={"model": "demo", "prompt": "Bread is", "max_tokens": 7, "ignore_eos": True},
        timeout=60,
    )
    assert completion.status_code == 200
    chat = {"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}
    with httpx.stream(
        "POST", f"{servers.http_url}/v1/chat/completions", json={**chat, "stream": True}
    ) as reply:
        assert [line for line in reply.iter_lines() if line][-1] == "data: [DONE]"
    embed = httpx.post(
        f"{servers.http_url}/v1/embeddings",
        json={"model": EMBED_MODEL, "input": ["a loaf of bread", "bread"]},
        timeout=60,
    )
    assert embed.status_code == 200
    after = scrape(servers)

    names = {n for n, _ in after}
    for family in SERVICE_METRICS:
        assert any(n.startswith(family) for n in names), family
    demo = {"model_name": "demo"}
    assert value(after, "vllm:generation_tokens_total", **demo) >= (
        value(before, "vllm:generation_tokens_total", **demo) + 7
    )
    for name in (
        "vllm:time_to_first_token_seconds_count",
        "vllm:e2e_request_latency_seconds_count",
    ):
        assert value(after, name, **demo) >= value(before, name, **demo) + 2, name
    assert value(after, "vllm:inter_token_latency_seconds_count", **demo) >= (
        value(before, "vllm:inter_token_latency_seconds_count", **demo) + 6
    )
    assert value(after, "vllm:request_success_total", finished_reason="length", **demo) >= (
        value(before, "vllm:request_success_total", finished_reason="length", **demo) + 1
    )
    minilm = {"model_name": EMBED_MODEL}
    assert value(after, "vllm:request_success_total", **minilm) >= (
        value(before, "vllm:request_success_total", **minilm) + 2
    )
    assert value(after, "vllm:prompt_tokens_total", **minilm) > value(
        before, "vllm:prompt_tokens_total", **minilm
    )
    assert value(after, "vllm:num_requests_running", **demo) == 0
    handler = {"handler": "/v1/completions", "method": "POST", "status": "2xx"}
    assert value(after, "http_requests_total", **handler) >= 1 + value(
        before, "http_requests_total", **handler
    )
    assert value(after, "http_request_duration_seconds_count", handler="/v1/embeddings") >= 1


def test_request_id_is_echoed_and_logged(servers) -> None:
    reply = httpx.post(
        f"{servers.http_url}/v1/completions",
        json={"model": "demo", "prompt": "Bread", "max_tokens": 3},
        headers={"X-Request-Id": "metrics-echo-1"},
        timeout=60,
    )
    assert reply.headers["x-request-id"] == "metrics-echo-1"
    assert reply.json()["id"] == "cmpl-metrics-echo-1"
    body_id = httpx.post(
        f"{servers.http_url}/v1/completions",
        json={"model": "demo", "prompt": "Bread", "max_tokens": 3, "request_id": "from-body"},
        timeout=60,
    )
    assert body_id.headers["x-request-id"] == "from-body"
    fresh = httpx.get(f"{servers.http_url}/v1/models", timeout=10).headers["x-request-id"]
    assert len(fresh) == 32
    record = _finished_record(servers, "metrics-echo-1")
    assert record["model"] == "demo" and record["completion_tokens"] == 3
    assert record["prompt_tokens"] > 0 and record["latency_s"] > 0
    assert record["ttft_s"] is not None


def _finished_record(servers, request_id: str) -> dict:
    for _ in range(50):
        for line in servers.log().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == "request finished" and (
                    record.get("request_id") == request_id
                ):
                    return record
        time.sleep(0.1)
    raise AssertionError(f"no 'request finished' log for {request_id}")
