"""A client that goes away frees its request: the engine reports no running request
and every KV block free shortly after, and the request ended as cancelled (not by
running to its natural end).

Generation requests run on their own server with a 2048-token context: a 2000-token
generation takes the demo model seconds, so it cannot end on its own before the client
goes away (480 tokens took ~1 s, and a loaded CI box once lost that race)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
import websockets

from protoserve.common.v1 import chat_pb2, params_pb2
from protoserve.generate.v1 import generate_pb2, generate_pb2_grpc
from protoserve.models.v1 import models_pb2, models_pb2_grpc
from protoserve.pooling.v1 import pooling_pb2, pooling_pb2_grpc
from tests.audio_samples import pcm16, synthetic
from tests.e2e.conftest import EMBED_MODEL
from tests.e2e.launch import Servers, serving

pytestmark = pytest.mark.e2e

MAX_TOKENS = 2000
LONG = {"max_tokens": MAX_TOKENS, "ignore_eos": True, "temperature": 0}
LONG_STOPPING = params_pb2.StoppingParams(max_tokens=MAX_TOKENS, ignore_eos=True)


@pytest.fixture(scope="module")
def long_servers(demo_model_dir, tmp_path_factory) -> Iterator[Servers]:
    log_path = tmp_path_factory.mktemp("logs") / "long.log"
    flags = ("--max-model-len", "2048", "--max-num-seqs", "4", "--enable-request-id-headers")
    with serving([f"demo={demo_model_dir}"], log_path, *flags) as servers:
        yield servers


@pytest.fixture(scope="module")
def long_channel(long_servers: Servers) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(long_servers.grpc_target) as channel:
        yield channel


def engine_stats(grpc_channel, model: str = "demo") -> models_pb2.RuntimeStats:
    stub = models_pb2_grpc.ModelsServiceStub(grpc_channel)
    return stub.GetModel(models_pb2.GetModelRequest(name=model), timeout=10).stats


def wait_idle(grpc_channel, seconds: float = 5.0, model: str = "demo") -> models_pb2.RuntimeStats:
    deadline = time.monotonic() + seconds
    while True:
        stats = engine_stats(grpc_channel, model)
        idle = stats.num_running == 0 and stats.num_waiting == 0
        if (idle and stats.kv_blocks_free == stats.kv_blocks_total) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def running_now(grpc_channel, seconds: float = 2.0) -> int:
    """num_running once the engine's stats snapshot has caught up: it is taken at the end
    of each engine turn, so right after a request's first token it can still be the one
    from before the request started."""
    deadline = time.monotonic() + seconds
    while (running := engine_stats(grpc_channel).num_running) == 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return running


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
def test_sse_client_disconnect_frees_the_request(long_servers, long_channel, path, body) -> None:
    request_id = f"disconnect-{path.rsplit('/', 1)[-1]}"
    with httpx.Client(timeout=60) as client:
        with client.stream(
            "POST",
            f"{long_servers.http_url}{path}",
            json={**body, "stream": True},
            headers={"x-request-id": request_id},
        ) as reply:
            lines = reply.iter_lines()
            received = [line for line, _ in zip(lines, range(6), strict=False) if line]
            assert received and received[0].startswith("data: ")
            assert running_now(long_channel) == 1
    stats = wait_idle(long_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    record = finished_log(long_servers, request_id)
    assert record["finish_reasons"] == ["cancelled"] and record["completion_tokens"] < MAX_TOKENS


RESPONSES_STREAM = {
    "model": "demo",
    "input": "Hi",
    "stream": True,
    "max_output_tokens": MAX_TOKENS,
    "ignore_eos": True,
    "temperature": 0,
    "store": False,
}


def _responses_stream_then_leave(servers: Servers, request_id: str, hold_seconds: float) -> dict:
    """Stream a long Responses generation, read its first events, hold the open stream
    unread for hold_seconds, then go away; the request's 'request finished' log."""
    with httpx.Client(timeout=60) as client:
        headers = {"x-request-id": request_id}
        url = f"{servers.http_url}/v1/responses"
        with client.stream("POST", url, json=RESPONSES_STREAM, headers=headers) as reply:
            # Kept in a name: a line iterator dropped half-read is collected, and closing
            # it closes the connection (the client would go away at once).
            lines = reply.iter_lines()
            received = [next(lines) for _ in range(16)]
            assert "event: response.output_text.delta" in received
            time.sleep(hold_seconds)
    return finished_log(servers, request_id)


def test_a_responses_stream_client_that_goes_away_frees_it(long_servers, long_channel) -> None:
    record = _responses_stream_then_leave(long_servers, "disconnect-responses", 0.0)
    stats = wait_idle(long_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    assert record["finish_reasons"] == ["cancelled"] and record["completion_tokens"] < MAX_TOKENS


def test_a_responses_stream_keeps_running_while_the_client_holds_it(long_servers) -> None:
    record = _responses_stream_then_leave(long_servers, "responses-held", 1.0)
    # Cancelled only once the client left, a second after it stopped reading.
    assert record["finish_reasons"] == ["cancelled"] and record["latency_s"] >= 1.0
    assert record["completion_tokens"] > 16


def test_non_streaming_client_disconnect_frees_the_request(long_servers, long_channel) -> None:
    request_id = "disconnect-unary"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{long_servers.http_url}/v1/completions",
            json={"prompt": "Bread", **LONG},
            headers={"x-request-id": request_id},
            timeout=0.5,
        )
    stats = wait_idle(long_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    assert finished_log(long_servers, request_id)["finish_reasons"] == ["cancelled"]


def test_grpc_cancel_frees_the_request(long_servers, long_channel) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(long_channel)
    request = generate_pb2.GenerateRequest(text="Bread", stopping=LONG_STOPPING)
    call = stub.GenerateStream(request, metadata=(("x-request-id", "grpc-cancel"),), timeout=60)
    for _, _event in zip(range(4), call, strict=False):
        pass
    call.cancel()
    stats = wait_idle(long_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    assert finished_log(long_servers, "grpc-cancel")["finish_reasons"] == ["cancelled"]


def test_deadline_frees_the_request(long_servers, long_channel) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(long_channel)
    request = generate_pb2.GenerateRequest(text="Bread", stopping=LONG_STOPPING)
    with pytest.raises(grpc.RpcError) as error:
        stub.Generate(request, metadata=(("x-request-id", "grpc-deadline"),), timeout=0.3)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    stats = wait_idle(long_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    assert finished_log(long_servers, "grpc-deadline")["finish_reasons"] == ["cancelled"]


def test_stream_deadline_frees_the_request(long_servers, long_channel) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(long_channel)
    request = generate_pb2.ChatRequest(
        messages=[chat_pb2.ChatMessage(role="user", content="Hi")],
        stopping=LONG_STOPPING,
    )
    metadata = (("x-request-id", "stream-deadline"),)
    with pytest.raises(grpc.RpcError) as error:
        for _ in stub.ChatStream(request, metadata=metadata, timeout=0.5):
            pass
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    stats = wait_idle(long_channel)
    assert stats.num_running == 0 and stats.kv_blocks_free == stats.kv_blocks_total
    assert finished_log(long_servers, "stream-deadline")["finish_reasons"] == ["cancelled"]


# -- pooling: one engine request per input, every one of them aborted -------------------
# ~40 s of CPU work if it ran to the end; an abort ends it within a step.
POOLING_INPUTS = [" ".join(f"word{i}" for i in range(60))] * 1000


def _wait_busy(grpc_channel, model: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = engine_stats(grpc_channel, model)
        if stats.num_running + stats.num_waiting > 0:
            return
        time.sleep(0.02)
    raise AssertionError("the pooling requests never reached the engine")


def test_grpc_cancel_of_a_pooling_request_aborts_every_input(servers, grpc_channel) -> None:
    stub = pooling_pb2_grpc.PoolingServiceStub(grpc_channel)
    request = pooling_pb2.EmbedRequest(
        model=EMBED_MODEL, inputs=[pooling_pb2.PoolingInput(text=t) for t in POOLING_INPUTS]
    )
    future = stub.Embed.future(request, timeout=120)
    _wait_busy(grpc_channel, EMBED_MODEL)
    future.cancel()
    stats = wait_idle(grpc_channel, seconds=15, model=EMBED_MODEL)
    assert stats.num_running == stats.num_waiting == 0
    assert future.cancelled()


def test_rest_disconnect_of_a_pooling_request_aborts_every_input(servers, grpc_channel) -> None:
    """The client gives up (a read timeout closes its connection) once the inputs are in
    the engine."""
    body = {"model": EMBED_MODEL, "input": POOLING_INPUTS}
    url = f"{servers.http_url}/v1/embeddings"
    with ThreadPoolExecutor(1) as pool:
        reply = pool.submit(httpx.post, url, json=body, timeout=httpx.Timeout(60, read=8))
        _wait_busy(grpc_channel, EMBED_MODEL)
        with pytest.raises(httpx.ReadTimeout):
            reply.result()
    stats = wait_idle(grpc_channel, seconds=15, model=EMBED_MODEL)
    assert stats.num_running == stats.num_waiting == 0


# -- the realtime WebSocket --------------------------------------------------------------
async def test_websocket_close_mid_utterance_frees_the_engine(speech_servers) -> None:
    """The socket closes while an utterance is being transcribed (its first window done,
    the next running): the StreamTranscribe call is cancelled, its engine request aborted."""
    url = speech_servers.http_url.replace("http://", "ws://") + "/v1/realtime"
    pcm = pcm16(synthetic(300.0))
    async with websockets.connect(url, max_size=None) as ws:
        session = json.loads(await ws.recv())["id"]
        await ws.send(json.dumps({"type": "session.update", "model": "whisper", "language": "en"}))
        for start in range(0, len(pcm), 32_000):  # 1 s appends
            audio = base64.b64encode(pcm[start : start + 32_000]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while (event := json.loads(await asyncio.wait_for(ws.recv(), 60)))["type"] != (
            "transcription.delta"
        ):
            assert event["type"] != "error", event
    with grpc.insecure_channel(speech_servers.grpc_target) as channel:
        stats = await asyncio.to_thread(wait_idle, channel, 30.0, "whisper")
    assert stats.num_running == stats.num_waiting == 0
    assert stats.kv_blocks_free == stats.kv_blocks_total
    lines = [line for line in speech_servers.log().splitlines() if session in line]
    outcomes = [json.loads(line).get("outcome") for line in lines if '"outcome"' in line]
    assert outcomes and outcomes[-1] == "cancelled", lines
