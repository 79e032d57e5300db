"""Request generation, arrivals, text prompts, the load driver and the SSE client."""

from __future__ import annotations

import asyncio
import json
import math
import socket

import aiohttp
import pytest
from aiohttp import web

from benchmarks.clients import OpenAICompletions, RequestResult, drive
from benchmarks.serve_report import run_record
from benchmarks.tokenizer import train_tokenizer
from benchmarks.workload import (
    BenchRequest,
    TextPrompts,
    WorkloadSpec,
    poisson_gaps,
    prompt_token_ids,
    sample_requests,
)

VOCAB = list(range(3, 1000))


def test_requests_are_seeded_and_in_range():
    spec = WorkloadSpec(num_requests=200, min_prompt_len=64, max_prompt_len=512, output_len=128)
    first, again = sample_requests(spec, VOCAB), sample_requests(spec, VOCAB)
    assert first == again
    assert len(first) == 200
    assert all(64 <= r.prompt_len <= 512 and r.output_len == 128 for r in first)
    assert all(set(r.prompt_ids) <= set(VOCAB) for r in first)
    lengths = {r.prompt_len for r in first}
    assert min(lengths) < 150 and max(lengths) > 420  # spread over the range, not constant


def test_each_run_gets_fresh_prompts():
    spec = WorkloadSpec(num_requests=8)
    assert sample_requests(spec.for_run(0), VOCAB) != sample_requests(spec.for_run(1), VOCAB)
    assert spec.for_run(1).num_requests == 8


def test_bad_specs_are_refused():
    with pytest.raises(ValueError):
        WorkloadSpec(min_prompt_len=10, max_prompt_len=5)
    with pytest.raises(ValueError):
        WorkloadSpec(num_requests=0)


def test_poisson_gaps():
    assert poisson_gaps(5, math.inf, 0) == [0.0] * 5
    gaps = poisson_gaps(4001, 10.0, seed=1)
    assert gaps[0] == 0.0 and all(g >= 0 for g in gaps)
    assert sum(gaps) / 4000 == pytest.approx(0.1, rel=0.1)  # mean gap 1 / rate
    assert poisson_gaps(10, 3.0, seed=2) == poisson_gaps(10, 3.0, seed=2)
    with pytest.raises(ValueError):
        poisson_gaps(3, 0.0, 0)


def test_prompt_ids_exclude_specials():
    assert prompt_token_ids(6, [0, 2]) == [1, 3, 4, 5]


def test_text_prompts_tokenize_to_the_drawn_ids():
    tokenizer = train_tokenizer(1024)
    assert tokenizer.get_vocab_size() == 1024
    prompts = TextPrompts.from_tokenizer(tokenizer)
    requests = sample_requests(WorkloadSpec(num_requests=4), prompts.token_ids)
    for request in requests:
        encoded = tokenizer.encode(prompts.text(request.prompt_ids), add_special_tokens=False)
        assert encoded.ids == request.prompt_ids


def test_drive_caps_concurrency_and_keeps_order():
    in_flight, peak = 0, 0

    async def send(request: BenchRequest, prompt) -> RequestResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        result = RequestResult(request.prompt_len, request.output_len)
        result.chunk(0.001, request.output_len)
        return result

    requests = [BenchRequest([1] * n, 4) for n in range(1, 21)]
    results, seconds = asyncio.run(drive(send, requests, lambda r: r.prompt_ids, math.inf, 3, 0))
    assert peak == 3
    assert [r.prompt_len for r in results] == list(range(1, 21))
    assert seconds > 0 and all(r.ok for r in results)


def _sse(chunks: list[dict]) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


async def _ask(handler, flavor: str, request: BenchRequest, prompt) -> RequestResult:
    """One request of OpenAICompletions against a real HTTP server on 127.0.0.1 whose
    POST /v1/completions is `handler` (an aiohttp.web handler)."""
    app = web.Application()
    app.router.add_post("/v1/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))  # a free port, bound before serving
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    try:
        async with aiohttp.ClientSession() as session:
            client = OpenAICompletions(f"http://127.0.0.1:{port}", "m", flavor, session)
            return await client(request, prompt)
    finally:
        await runner.cleanup()


def _streaming(chunks: list[dict], check=lambda body: None):
    async def handler(request: web.Request) -> web.Response:
        check(await request.json())
        return web.Response(body=_sse(chunks), content_type="text/event-stream")

    return handler


def test_openai_client_counts_token_ids_and_times_chunks():
    chunks = [
        {"choices": [{"index": 0, "text": "", "token_ids": [5]}]},
        {"choices": [{"index": 0, "text": "ab", "token_ids": [6, 7]}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}},
    ]
    seen = {}
    handler = _streaming(chunks, seen.update)
    result = asyncio.run(_ask(handler, "protoserve", BenchRequest([1, 2, 3], 3), [1, 2, 3]))
    assert seen["ignore_eos"] is True and seen["max_tokens"] == 3 and seen["stream"] is True
    assert result.ok and result.output_tokens == 3 and result.prompt_tokens == 3
    assert len(result.chunk_times) == 2 and result.ttft == result.chunk_times[0]
    record = run_record([result], seconds=1.0)
    assert record["output_tok_s"] == 3.0 and record["outputs_not_expected_length"] == 0
    assert len(record["raw"]["itl_s"]) == 1


def test_transformers_flavor_reads_usage_and_disables_eos():
    chunks = [{"choices": [{"text": "a"}]}, {"choices": [{"text": "b"}]},
              {"choices": [{"text": "", "finish_reason": "length"}],
               "usage": {"prompt_tokens": 2, "completion_tokens": 4}}]  # fmt: skip
    seen = {}
    handler = _streaming(chunks, seen.update)
    result = asyncio.run(_ask(handler, "transformers", BenchRequest([1, 2], 4), " a b"))
    config = json.loads(seen["generation_config"])
    assert config["eos_token_id"] is None and config["min_new_tokens"] == 4
    assert "ignore_eos" not in seen
    assert result.output_tokens == 4 and len(result.chunk_times) == 2
    assert result.tpot is not None


def test_http_error_is_recorded_not_raised():
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "bad"}, status=400)

    result = asyncio.run(_ask(refuse, "protoserve", BenchRequest([1], 2), [1]))
    assert not result.ok and "400" in result.error
