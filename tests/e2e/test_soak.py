"""Soak: 500 mixed requests through the bridge (completions and chat, streaming and not,
embeddings on all-MiniLM-L6-v2), a third of them cancelled at seeded random points
(after a few SSE frames, or a non-streaming call given up after a few milliseconds).
Afterwards: no request hung, every engine is idle with every KV block free, the service
process grew less than 10 % in RSS since the warm-up, and /metrics reports nothing
running. Small max_tokens keep it well under two minutes on two cores."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import grpc
import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from protoserve.models.v1 import models_pb2, models_pb2_grpc
from tests.e2e.conftest import EMBED_MODEL

pytestmark = [pytest.mark.e2e, pytest.mark.soak, pytest.mark.timeout(300)]

REQUESTS = 500
WARM_UP = 120
CONCURRENCY = 12
SEED = 20261201
REQUEST_LIMIT_S = 60  # a request still going after this is hung
KINDS = ("completion", "chat", "completion_stream", "chat_stream", "embedding")
WORDS = "bread flour water salt yeast oven crust crumb loaf dough".split()


@dataclass(frozen=True)
class Job:
    kind: str
    body: dict
    cancel_after: float | int | None  # SSE frames to read, or seconds to wait; None: all


def make_jobs(rng: random.Random, count: int, cancel_share: float) -> list[Job]:
    cancelled = set(rng.sample(range(count), round(count * cancel_share)))
    jobs = []
    for i in range(count):
        kind = rng.choice(KINDS)
        text = " ".join(rng.choices(WORDS, k=rng.randint(1, 12)))
        if kind == "embedding":
            body = {"model": EMBED_MODEL, "input": [text] * rng.randint(1, 4)}
        else:
            body = {"model": "demo", "max_tokens": rng.randint(1, 24), "temperature": 0.7,
                    "seed": i, "ignore_eos": rng.random() < 0.5}  # fmt: skip
            if kind.startswith("chat"):
                body["messages"] = [{"role": "user", "content": text}]
            else:
                body["prompt"] = text
        cancel = None
        if i in cancelled:
            streaming = kind.endswith("_stream")
            cancel = rng.randint(0, 5) if streaming else rng.uniform(0.002, 0.15)
        jobs.append(Job(kind, body, cancel))
    return jobs


async def run_job(client: httpx.AsyncClient, job: Job) -> str:
    """'ok' or 'cancelled'; raises on a wrong answer."""
    path = {"embedding": "/v1/embeddings", "chat": "/v1/chat/completions"}.get(
        job.kind.removesuffix("_stream"), "/v1/completions"
    )
    if job.kind.endswith("_stream"):
        return await _stream(client, path, job)
    call = client.post(path, json=job.body)
    if job.cancel_after is not None:
        try:
            reply = await asyncio.wait_for(call, job.cancel_after)
        except TimeoutError:
            return "cancelled"  # the connection is closed: the bridge cancels the call
    else:
        reply = await call
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["prompt_tokens"] > 0
    return "ok"


async def _stream(client: httpx.AsyncClient, path: str, job: Job) -> str:
    frames = []
    async with client.stream("POST", path, json={**job.body, "stream": True}) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if not line:
                continue
            frames.append(line)
            if job.cancel_after is not None and len(frames) > job.cancel_after:
                return "cancelled"  # leaving the block closes the connection mid-stream
    assert frames[-1] == "data: [DONE]" and not any('"error"' in f for f in frames), frames
    return "ok"


async def run_all(url: str, jobs: list[Job]) -> dict[str, int]:
    limit = asyncio.Semaphore(CONCURRENCY)
    outcomes = {"ok": 0, "cancelled": 0, "hung": 0}
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_LIMIT_S + 10) as client:

        async def one(job: Job) -> None:
            async with limit:
                try:
                    outcome = await asyncio.wait_for(run_job(client, job), REQUEST_LIMIT_S)
                except TimeoutError:
                    outcome = "hung"
                outcomes[outcome] += 1

        await asyncio.gather(*(one(job) for job in jobs))
    return outcomes


def engine_stats(channel: grpc.Channel, name: str) -> models_pb2.RuntimeStats:
    stub = models_pb2_grpc.ModelsServiceStub(channel)
    return stub.GetModel(models_pb2.GetModelRequest(name=name), timeout=10).stats


def wait_idle(channel: grpc.Channel, seconds: float = 15) -> dict[str, models_pb2.RuntimeStats]:
    deadline = time.monotonic() + seconds
    while True:
        stats = {name: engine_stats(channel, name) for name in ("demo", EMBED_MODEL)}
        idle = all(
            s.num_running == 0 and s.num_waiting == 0 and s.kv_blocks_free == s.kv_blocks_total
            for s in stats.values()
        )
        if idle or time.monotonic() > deadline:
            return stats
        time.sleep(0.1)


def queue_gauges(url: str) -> dict[tuple[str, str], float]:
    """(gauge, model) -> value of vllm:num_requests_running / _waiting."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, sample.labels["model_name"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in ("vllm:num_requests_running", "vllm:num_requests_waiting")
    }


def test_soak_mixed_requests_with_cancellations(servers, grpc_channel) -> None:
    rng = random.Random(SEED)
    service = psutil.Process(servers.process.pid)
    warm = asyncio.run(run_all(servers.http_url, make_jobs(rng, WARM_UP, cancel_share=1 / 3)))
    assert warm["hung"] == 0
    wait_idle(grpc_channel)
    rss_before = service.memory_info().rss

    jobs = make_jobs(rng, REQUESTS, cancel_share=1 / 3)
    assert sum(job.cancel_after is not None for job in jobs) == round(REQUESTS / 3)
    assert {job.kind for job in jobs} == set(KINDS)
    started = time.monotonic()
    outcomes = asyncio.run(run_all(servers.http_url, jobs))
    elapsed = time.monotonic() - started

    assert outcomes["hung"] == 0, outcomes
    assert outcomes["ok"] + outcomes["cancelled"] == REQUESTS
    assert outcomes["cancelled"] > 0  # some cancels landed before the answer
    stats = wait_idle(grpc_channel)
    for name, s in stats.items():
        assert s.num_running == 0 and s.num_waiting == 0, (name, s)
        assert s.kv_blocks_free == s.kv_blocks_total, (name, s)
    gauges = queue_gauges(servers.http_url)
    assert len(gauges) == 4 and not any(gauges.values()), gauges  # 2 gauges x 2 models
    rss_after = service.memory_info().rss
    growth = rss_after / rss_before - 1
    print(f"soak: {outcomes} in {elapsed:.1f}s; service RSS {rss_before >> 20} -> "
          f"{rss_after >> 20} MiB ({growth:+.1%})")  # fmt: skip
    assert growth < 0.10
