"""Stopping `protoserve serve`: SIGTERM while 16 streams are in flight (they all run to
their end, new work is refused, exit 0), and an engine failure (a fault injected into the
step loop: in-flight requests fail with 500 / INTERNAL, health turns NOT_SERVING, the
process exits non-zero so an orchestrator restarts it)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc
from protoserve.models.v1 import models_pb2, models_pb2_grpc
from service.drain import DRAINING_MESSAGE
from service.faults import ENGINE_FAULT_FILE_ENV
from tests.e2e.launch import Servers, start_serve, stop_serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

STREAMS = 16
TOKENS = 256  # per stream: several seconds of work for 16 on a CPU
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def sse_stream(url: str, path: str, body: dict, out: list, started: threading.Event) -> None:
    with httpx.stream("POST", f"{url}{path}", json={**body, "stream": True}, timeout=120) as r:
        lines = []
        for line in r.iter_lines():
            started.set()
            if line.startswith("data: "):
                lines.append(line.removeprefix("data: "))
    out.append((r.status_code, lines))


def grpc_stream(target: str, out: list, started: threading.Event) -> None:
    request = pb.GenerateRequest(
        text="Bread is", stopping=params_pb2.StoppingParams(max_tokens=TOKENS, ignore_eos=True)
    )
    events = []
    with grpc.insecure_channel(target) as channel:
        try:
            for event in generate_pb2_grpc.GenerateServiceStub(channel).GenerateStream(
                request, timeout=120
            ):
                started.set()
                events.append(event)
        except grpc.RpcError as error:
            started.set()
            out.append(error)
            return
    out.append(events)


def start_threads(jobs: list) -> list[threading.Thread]:
    threads = []
    for target, args in jobs:
        started = threading.Event()
        thread = threading.Thread(target=target, args=(*args, started), daemon=True)
        thread.start()
        threads.append((thread, started))
    for _thread, started in threads:
        assert started.wait(60), "a stream did not start"
    return [t for t, _ in threads]


def _jobs(servers: Servers, sse: list, grpcs: list, count: int) -> list:
    """A quarter native gRPC streams, the rest SSE (completions and chat) via the bridge."""
    long = {"max_tokens": TOKENS, "ignore_eos": True}
    chat = {"messages": [{"role": "user", "content": "Hi"}], **long}
    jobs = []
    for i in range(count):
        if i % 4 == 0:
            jobs.append((grpc_stream, (servers.grpc_target, grpcs)))
        elif i % 2:
            jobs.append((sse_stream, (servers.http_url, "/v1/chat/completions", chat, sse)))
        else:
            body = {"prompt": "Bread", **long}
            jobs.append((sse_stream, (servers.http_url, "/v1/completions", body, sse)))
    return jobs


def health_status(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status


def wait_for(check, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (grpc.RpcError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds}s: {what}")


def finish_reasons(lines: list[str]) -> list[str]:
    chunks = [json.loads(line) for line in lines if line != "[DONE]"]
    return [c["finish_reason"] for chunk in chunks for c in chunk.get("choices", [])]


def test_sigterm_during_16_streams_finishes_them_and_exits_0(
    demo_model_dir: Path, tmp_path: Path
) -> None:
    servers = start_serve(
        [str(demo_model_dir)], tmp_path / "serve.log",
        "--served-model-name", "demo", "--max-num-seqs", "16", "--max-model-len", "512",
        "--shutdown-timeout", "120",
    )  # fmt: skip
    try:
        sse, grpcs = [], []
        threads = start_threads(_jobs(servers, sse, grpcs, STREAMS))
        assert _running(servers.grpc_target) == STREAMS  # all 16 in flight
        servers.process.send_signal(signal.SIGTERM)
        wait_for(lambda: health_status(servers.grpc_target) == NOT_SERVING, "NOT_SERVING")

        refused = httpx.post(
            f"{servers.http_url}/v1/completions", json={"prompt": "x", "max_tokens": 1}, timeout=10
        )
        assert refused.status_code == 503, refused.text
        assert DRAINING_MESSAGE in refused.json()["error"]["message"]
        with grpc.insecure_channel(servers.grpc_target) as channel:
            with pytest.raises(grpc.RpcError) as error:
                generate_pb2_grpc.GenerateServiceStub(channel).Generate(
                    pb.GenerateRequest(text="x"), timeout=10
                )
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE

        for thread in threads:
            thread.join(180)
        assert len(sse) + len(grpcs) == STREAMS
        for status, lines in sse:
            assert status == 200 and lines[-1] == "[DONE]"
            assert [r for r in finish_reasons(lines) if r] == ["length"]
        for events in grpcs:
            assert not isinstance(events, grpc.RpcError), events
            assert events[-1].end.usage.completion_tokens == TOKENS
        assert servers.process.wait(60) == 0, servers.log()[-3000:]
    finally:
        stop_serve(servers)


def _running(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = models_pb2_grpc.ModelsServiceStub(channel)
        return stub.GetModel(models_pb2.GetModelRequest(name="demo"), timeout=5).stats.num_running


def test_engine_failure_fails_in_flight_requests_and_exits_non_zero(
    demo_model_dir: Path, tmp_path: Path
) -> None:
    trigger = tmp_path / "fail-now"
    servers = start_serve(
        [str(demo_model_dir)], tmp_path / "serve.log",
        "--served-model-name", "demo", "--max-model-len", "2048", "--shutdown-timeout", "30",
        env={ENGINE_FAULT_FILE_ENV: str(trigger)},
    )  # fmt: skip
    try:
        for _ in range(2):  # a polling health checker: the drain waits until it is told
            assert health_status(servers.grpc_target) == health_pb2.HealthCheckResponse.SERVING
        endless = {"prompt": "Bread", "max_tokens": 2000, "ignore_eos": True}
        sse, grpcs, unary = [], [], []
        jobs = [
            (sse_stream, (servers.http_url, "/v1/completions", endless, sse)),
            (sse_stream, (servers.http_url, "/v1/completions", endless, sse)),
            (grpc_stream, (servers.grpc_target, grpcs)),
        ]
        threads = start_threads(jobs)
        unary_thread = threading.Thread(
            target=lambda: unary.append(
                httpx.post(f"{servers.http_url}/v1/completions", json=endless, timeout=120)
            ),
            daemon=True,
        )
        unary_thread.start()
        wait_for(lambda: _running(servers.grpc_target) == 4, "4 requests running")
        trigger.touch()

        wait_for(lambda: health_status(servers.grpc_target) == NOT_SERVING, "NOT_SERVING")
        for thread in [*threads, unary_thread]:
            thread.join(60)
        for status, lines in sse:
            assert status == 200 and lines[-1] == "[DONE]"
            error = json.loads(lines[-2])["error"]
            assert error["code"] == 500 and error["type"] == "InternalServerError"
            assert "engine failed" in error["message"]
        [reply] = unary
        assert reply.status_code == 500, reply.text
        assert reply.json()["error"]["type"] == "InternalServerError"
        assert "engine failed" in reply.json()["error"]["message"]
        [failure] = grpcs
        assert isinstance(failure, grpc.RpcError) and failure.code() == grpc.StatusCode.INTERNAL
        assert servers.process.wait(60) == 1, servers.log()[-3000:]
        assert "engine failed; stopping the server" in servers.log()
    finally:
        stop_serve(servers)
