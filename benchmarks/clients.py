"""Streaming clients for `bench serve`, one request each, timing every token-bearing
message: the OpenAI completions API over SSE (aiohttp, as vLLM's `bench serve` uses: it
costs the client ~70 us of CPU per streamed chunk where httpx took ~170, CPU the servers
being measured share on a small machine), as served by our REST bridge or by
`transformers serve`, and our gRPC GenerateStream (stubs from the `protoserve` package)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from benchmarks.stats import gaps
from benchmarks.workload import BenchRequest, poisson_gaps


@dataclass
class RequestResult:
    prompt_len: int  # what was sent
    expected_output: int
    sent_at: float = 0.0  # seconds since the run started
    prompt_tokens: int | None = None  # what the server counted
    output_tokens: int = 0
    ttft: float | None = None
    e2e: float = 0.0
    chunk_times: list[float] = field(default_factory=list)  # since sent, token-bearing chunks
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.output_tokens > 0

    @property
    def itl(self) -> list[float]:
        return gaps(self.chunk_times)

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)

    def chunk(self, now: float, tokens: int) -> None:
        if tokens <= 0:
            return
        if self.ttft is None:
            self.ttft = now
        self.chunk_times.append(now)
        self.output_tokens += tokens


class OpenAICompletions:
    """POST /v1/completions, stream=true. flavor "protoserve" asks for token ids in every
    chunk (exact counts) and ignore_eos; "transformers" passes a generation_config that
    disables EOS and sets min_new_tokens (its API has no ignore_eos), and counts tokens
    from the final usage."""

    def __init__(
        self,
        base_url: str,
        model: str,
        flavor: str,
        session: aiohttp.ClientSession,
        cache_salt: str = "",
    ):
        self.url = f"{base_url.rstrip('/')}/v1/completions"
        self.model, self.flavor, self.session = model, flavor, session
        self.cache_salt = cache_salt  # protoserve: prefix-cache namespace of these requests

    def payload(self, request: BenchRequest, prompt: str | list[int]) -> dict:
        body = {
            "model": self.model, "prompt": prompt, "max_tokens": request.output_len,
            "temperature": 0.0, "stream": True,
        }  # fmt: skip
        if self.flavor == "protoserve":
            body.update(ignore_eos=True, return_token_ids=True,
                        stream_options={"include_usage": True})  # fmt: skip
            if self.cache_salt:
                body["cache_salt"] = self.cache_salt
        else:
            body["generation_config"] = json.dumps({
                "max_new_tokens": request.output_len, "min_new_tokens": request.output_len,
                "do_sample": False, "eos_token_id": None,
            })  # fmt: skip
        return body

    async def __call__(self, request: BenchRequest, prompt: str | list[int]) -> RequestResult:
        result = RequestResult(request.prompt_len, request.output_len)
        started = time.perf_counter()
        usage = None
        try:
            async with self.session.post(self.url, json=self.payload(request, prompt)) as r:
                if r.status != 200:
                    result.error = f"HTTP {r.status}: {(await r.read())[:300]!r}"
                    return result
                async for line in r.content:  # one SSE line at a time
                    usage = self._line(line, result, time.perf_counter() - started) or usage
        except aiohttp.ClientError as exc:
            result.error = repr(exc)
        result.e2e = time.perf_counter() - started
        if usage:
            result.prompt_tokens = usage.get("prompt_tokens")
            if self.flavor != "protoserve":  # chunks are text: the usage has the count
                result.output_tokens = usage.get("completion_tokens", result.output_tokens)
        return result

    def _line(self, line: bytes, result: RequestResult, now: float) -> dict | None:
        if not line.startswith(b"data:"):
            return None
        data = line[5:].strip()
        if data == b"[DONE]":
            return None
        message = json.loads(data)
        if "error" in message:
            result.error = str(message["error"])[:300]
            return None
        for choice in message.get("choices") or []:
            if self.flavor == "protoserve":
                result.chunk(now, len(choice.get("token_ids") or []))
            else:
                result.chunk(now, 1 if choice.get("text") else 0)
        return message.get("usage")


class GrpcGenerate:
    """GenerateService.GenerateStream: the first message is prompt info, then deltas
    (token ids in each), then the end with usage."""

    def __init__(self, target: str, model: str, cache_salt: str = "") -> None:
        import grpc

        from protoserve.generate.v1 import generate_pb2_grpc

        self.channel = grpc.aio.insecure_channel(target)
        self.stub = generate_pb2_grpc.GenerateServiceStub(self.channel)
        self.model, self.cache_salt = model, cache_salt

    def message(self, request: BenchRequest, prompt: str | list[int]):
        from protoserve.common.v1 import params_pb2
        from protoserve.generate.v1 import generate_pb2

        message = generate_pb2.GenerateRequest(
            model=self.model,
            sampling=params_pb2.SamplingParams(temperature=0.0),
            stopping=params_pb2.StoppingParams(max_tokens=request.output_len, ignore_eos=True),
            cache_salt=self.cache_salt,
        )
        if isinstance(prompt, str):
            message.text = prompt
        else:
            message.token_ids.ids.extend(prompt)
        return message

    async def __call__(self, request: BenchRequest, prompt: str | list[int]) -> RequestResult:
        import grpc

        result = RequestResult(request.prompt_len, request.output_len)
        started = time.perf_counter()
        metadata = (("x-request-id", f"bench-{uuid.uuid4().hex[:12]}"),)
        try:
            async for reply in self.stub.GenerateStream(
                self.message(request, prompt), metadata=metadata
            ):
                event = reply.WhichOneof("event")
                if event == "prompt":
                    result.prompt_tokens = reply.prompt.num_tokens
                elif event == "delta":
                    result.chunk(time.perf_counter() - started, len(reply.delta.token_ids))
        except grpc.aio.AioRpcError as exc:
            result.error = f"{exc.code().name}: {exc.details()}"
        result.e2e = time.perf_counter() - started
        return result

    async def close(self) -> None:
        await self.channel.close()


async def drive(
    send: Callable[[BenchRequest, str | list[int]], Awaitable[RequestResult]],
    requests: Sequence[BenchRequest],
    prompt_of: Callable[[BenchRequest], str | list[int]],
    request_rate: float,
    max_concurrency: int,
    seed: int,
    on_done: Callable[[], None] = lambda: None,
) -> tuple[list[RequestResult], float]:
    """Issue `requests` in order with Poisson gaps (rate inf: at once), at most
    `max_concurrency` in flight (0: no cap); returns the results in request order and the
    seconds from the first send to the last completion."""
    limit = asyncio.Semaphore(max_concurrency) if max_concurrency > 0 else None
    started = time.perf_counter()

    async def one(request: BenchRequest) -> RequestResult:
        async with limit or contextlib.nullcontext():
            sent = time.perf_counter() - started
            result = await send(request, prompt_of(request))
        result.sent_at = sent
        on_done()
        return result

    tasks = []
    for request, gap in zip(requests, poisson_gaps(len(requests), request_rate, seed), strict=True):
        if gap:
            await asyncio.sleep(gap)
        tasks.append(asyncio.create_task(one(request)))
    results = await asyncio.gather(*tasks)
    return list(results), time.perf_counter() - started
