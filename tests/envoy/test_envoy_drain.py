"""Drain: SIGTERM to `protoserve serve` while streams are in flight (gRPC through Envoy,
and SSE through Envoy -> bridge -> service). The streams run to their end; new work is
refused (gRPC UNAVAILABLE "server is draining", JSON 503, bridge 503); exit code 0."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import grpc
import httpx
import pytest
from envoy_stack import Envoy, Serve, require_tool, wait_until
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

LONG = 600  # tokens per in-flight stream: a second or more of work on a CPU
DRAINING = "server is draining"


def grpc_stream(target: str, started: threading.Event, result: dict) -> None:
    request = pb.GenerateRequest(
        text="Bread is", stopping=params_pb2.StoppingParams(max_tokens=LONG, ignore_eos=True)
    )
    with grpc.insecure_channel(target) as channel:
        events = []
        for event in generate_pb2_grpc.GenerateServiceStub(channel).GenerateStream(
            request, timeout=60
        ):
            started.set()
            events.append(event)
    result["grpc"] = events


def sse_stream(url: str, started: threading.Event, result: dict) -> None:
    body = {"prompt": "Bread is", "max_tokens": LONG, "ignore_eos": True, "stream": True}
    lines = []
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as reply:
        for line in reply.iter_lines():
            started.set()
            if line.startswith("data: "):
                lines.append(line.removeprefix("data: "))
    result["sse"] = (reply.status_code, lines)


def test_sigterm_drains_in_flight_streams(demo_model_dir: Path, descriptor, envoy_logs) -> None:
    require_tool("envoy")
    serve = Serve.start(
        demo_model_dir, envoy_logs, "--max-model-len", "700", "--shutdown-timeout", "30"
    )
    envoy = None
    try:
        envoy = Envoy.start(
            envoy_logs, descriptor, [serve.grpc_target], bridge=f"127.0.0.1:{serve.http_port}"
        )
        result: dict = {}
        streams = []
        for run, target in ((grpc_stream, envoy.grpc_target), (sse_stream, envoy.url)):
            started = threading.Event()
            thread = threading.Thread(target=run, args=(target, started, result), daemon=True)
            thread.start()
            assert started.wait(30), f"{run.__name__} did not start"
            streams.append(thread)

        serve.process.send(signal.SIGTERM)
        with grpc.insecure_channel(serve.grpc_target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            wait_until(
                lambda: (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.NOT_SERVING
                ),
                "NOT_SERVING",
                serve.process,
                10,
            )
            with pytest.raises(grpc.RpcError) as refused:
                generate_pb2_grpc.GenerateServiceStub(channel).Generate(
                    pb.GenerateRequest(text="x"), timeout=10
                )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert refused.value.details() == DRAINING

        # Through Envoy: native gRPC (retried, then refused), JSON, and the bridge.
        with grpc.insecure_channel(envoy.grpc_target) as channel:
            with pytest.raises(grpc.RpcError) as refused:
                generate_pb2_grpc.GenerateServiceStub(channel).Generate(
                    pb.GenerateRequest(text="x"), timeout=10
                )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        json_reply = httpx.post(f"{envoy.url}/api/v1/generate", json={"text": "x"}, timeout=10)
        assert json_reply.status_code == 503
        assert json_reply.json()["message"] == DRAINING
        bridge_reply = httpx.post(
            f"{envoy.url}/v1/completions", json={"prompt": "x", "max_tokens": 1}, timeout=10
        )
        assert bridge_reply.status_code == 503, bridge_reply.text
        assert DRAINING in bridge_reply.json()["error"]["message"]

        for thread in streams:
            thread.join(60)
        events = result["grpc"]
        assert events[-1].WhichOneof("event") == "end"
        assert events[-1].end.usage.completion_tokens == LONG
        status, lines = result["sse"]
        assert status == 200 and lines[-1] == "[DONE]"
        finals = [json.loads(line)["choices"] for line in lines[:-1]]
        assert [c[0]["finish_reason"] for c in finals if c][-1] == "length"
        assert serve.process.wait(40) == 0, serve.process.log()[-3000:]
    finally:
        if envoy is not None:
            envoy.process.stop()
        serve.process.stop()
