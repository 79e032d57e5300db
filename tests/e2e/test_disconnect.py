"""A client that goes away frees its request: the engine reports no running request
and every KV block free shortly after, and the request ended as cancelled (not by
running to its natural end)."""

from __future__ import annotations

import json
import time

import grpc
import httpx
import pytest

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2, generate_pb2_grpc
from protoserve.models.v1 import models_pb2, models_pb2_grpc

pytestmark = pytest.mark.e2e

LONG = {"max_tokens": 480, "ignore_eos": True, "temperature": 0}


def engine_stats(grpc_channel) -> models_pb2.RuntimeStats:
    stub = models_pb2_grpc.ModelsServiceStub(grpc_channel)
    return stub.GetModel(models_pb2.GetModelRequest(name="demo"), timeout=10).stats


def wait_idle(grpc_channel, seconds: float = 5.0) -> models_pb2.RuntimeStats:
    deadline = time.monotonic() + seconds
    while True:
        stats = engine_stats(grpc_channel)
        idle = stats.num_running == 0 and stats.num_waiting == 0
        if (idle and stats.kv_blocks_free == stats.kv_blocks_total) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def finished_log(servers, request_id: str) -> dict:
    for _ in range(50):
        for line in servers.log().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if (
                    record.get("event") == "request finished"
                    and record.get("request_id") == request_id
                ):
                    return record
        time.sleep(0.1)
    raise AssertionError(f"no 'request finished' log for {request_id}")


@pytest.mark.parametrize(
    "path,body",
    [
        ("/v1/completions", {"prompt": "Bread is", **LONG}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], **LONG}),
    ],
)
def test_sse_client_disconnect_frees_the_request(servers, grpc_channel, path, body) -> None:
    request_id = f"disconnect-{path.rsplit('/', 1)[-1]}"
    with httpx.Client(timeout=60) as client:
        with client.stream(
            "POST",
            f"{servers.http_url}{path}",
            json={**body, "stream": True},
            headers={"x-request-id": request_id},
        ) as reply:
            lines = reply.iter_lines()
            received = [line for line, _ in zip(lines, range(6), strict=False) if line]
            assert received and received[0].startswith("data: ")
            assert engine_stats(grpc_channel).num_running == 1
    stats = wait_idle(grpc_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    record = finished_log(servers, request_id)
    assert record["finish_reasons"] == ["cancelled"] and record["completion_tokens"] < 480


def test_non_streaming_client_disconnect_frees_the_request(servers, grpc_channel) -> None:
    request_id = "disconnect-unary"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{servers.http_url}/v1/completions",
            json={"prompt": "Bread", **LONG},
            headers={"x-request-id": request_id},
            timeout=0.5,
        )
    stats = wait_idle(grpc_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    assert finished_log(servers, request_id)["finish_reasons"] == ["cancelled"]


def test_grpc_cancel_frees_the_request(servers, grpc_channel) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(grpc_channel)
    request = generate_pb2.GenerateRequest(
        text="Bread", stopping=params_pb2.StoppingParams(max_tokens=480, ignore_eos=True)
    )
    call = stub.GenerateStream(request, metadata=(("x-request-id", "grpc-cancel"),), timeout=60)
    for _, _event in zip(range(4), call, strict=False):
        pass
    call.cancel()
    stats = wait_idle(grpc_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    assert finished_log(servers, "grpc-cancel")["finish_reasons"] == ["cancelled"]


def test_deadline_frees_the_request(servers, grpc_channel) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(grpc_channel)
    request = generate_pb2.GenerateRequest(
        text="Bread", stopping=params_pb2.StoppingParams(max_tokens=480, ignore_eos=True)
    )
    with pytest.raises(grpc.RpcError) as error:
        stub.Generate(request, metadata=(("x-request-id", "grpc-deadline"),), timeout=0.3)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    stats = wait_idle(grpc_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    assert finished_log(servers, "grpc-deadline")["finish_reasons"] == ["cancelled"]
