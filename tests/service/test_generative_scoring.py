"""Generative scoring on the demo model through the real service (in-process gRPC, port
0) and the REST bridge (in-process ASGI): the score is the softmax over the label
tokens' logits after each prompt, as transformers computes them (or the full-vocabulary
probability without apply_softmax)."""

from __future__ import annotations

import httpx
import pytest
import torch

from rest_bridge.app import create_app
from rest_bridge.grpc_client import GrpcClient
from rest_bridge.settings import BridgeSettings
from service.config import EngineOptions, ModelSpec, ServiceConfig
from service.server import Service

LABELS = [5, 17, 42]


@pytest.fixture(scope="module")
async def http(demo_model_dir):
    config = ServiceConfig(
        models=(ModelSpec(str(demo_model_dir), ("demo",)),),
        engine=EngineOptions(max_model_len=128, device="cpu", kv_cache_memory=8 << 20),
        host="127.0.0.1",
        grpc_port=0,
        shutdown_timeout=1,
    )
    service = await Service.start(config)
    await service.load_models()
    target = f"127.0.0.1:{service.port}"
    app = create_app(BridgeSettings(grpc_target=target))
    app.state.grpc = GrpcClient.connect(target)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge")
    yield client
    await client.aclose()
    await app.state.grpc.close()
    await service.stop()


@pytest.fixture(scope="module")
def reference(demo_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(demo_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)

    def last_logits(ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=torch.tensor([ids])).logits[0, -1]

    return last_logits, tokenizer


async def test_scores_are_the_label_softmax_of_transformers_logits(http, reference) -> None:
    last_logits, tokenizer = reference
    query, items = "The bread was ", ["warm", "cold and stale", "a lighthouse"]
    reply = await http.post("/generative_scoring", json={
        "model": "demo", "query": query, "items": items, "label_token_ids": LABELS})  # fmt: skip
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1, 2]
    for item, result in zip(items, body["data"], strict=True):
        logits = last_logits(tokenizer(query + item)["input_ids"])
        expected = logits[LABELS].softmax(-1)[0].item()
        assert result["score"] == pytest.approx(expected, abs=1e-5)
    assert body["usage"]["prompt_tokens"] > 0


async def test_token_ids_item_first_and_full_vocabulary(http, reference) -> None:
    last_logits, _ = reference
    query, items = [11, 42, 97], [[5, 230], [17]]
    reply = await http.post("/generative_scoring", json={
        "model": "demo", "query": query, "items": items, "label_token_ids": LABELS,
        "item_first": True, "apply_softmax": False})  # fmt: skip
    for item, result in zip(items, reply.json()["data"], strict=True):
        expected = last_logits(item + query).softmax(-1)[LABELS[0]].item()
        assert result["score"] == pytest.approx(expected, abs=1e-6)


async def test_bad_requests(http) -> None:
    cases = [
        ({"label_token_ids": [10**6]}, "label_token_ids"),
        ({"label_token_ids": []}, "label_token_ids"),
        ({"items": [[1, 2]]}, "items"),  # token ids mixed with a text query
    ]
    for extra, param in cases:
        body = {"model": "demo", "query": "x", "items": ["y"], "label_token_ids": [5], **extra}
        reply = await http.post("/generative_scoring", json=body)
        assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text
