"""Pooling and scoring through the real service (in-process gRPC server, port 0) and the
REST bridge app (in-process ASGI), on tiny random BERT checkpoints: a 3-label
classifier and a cross-encoder, compared with transformers' AutoModelForSequenceClassification
on the same texts; the errors an endpoint the model cannot serve gives."""

from __future__ import annotations

import grpc
import pytest
import torch

from protoserve.models.v1 import models_pb2, models_pb2_grpc
from tests.pooling_models import build
from tests.service.pooling_stack import pooling_stack

QUERY = "what is the capital of france"
DOCUMENTS = ["paris is the capital of france", "bananas are yellow", "the eiffel tower"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("pooling-api")
    return {
        "clf": build("bert_classifier", root, seed=11),
        "cross": build("bert_cross_encoder", root, seed=12),
    }


@pytest.fixture(scope="module")
async def stack(tiny):
    async with pooling_stack({name: m.path for name, m in tiny.items()}) as served:
        yield served


def hf_logits(model, first: str, second: str | None = None) -> torch.Tensor:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model.path)
    with torch.no_grad():
        return model.hf(**tokenizer(first, second, return_tensors="pt")).logits[0]


async def test_classify_matches_transformers(stack, tiny) -> None:
    http, _ = stack
    texts = ["i loved this film", "worst purchase ever, never again", "it is a chair"]
    reply = await http.post("/classify", json={"model": "clf", "input": texts})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["id"].startswith("classify-") and body["object"] == "list"
    assert body["usage"]["completion_tokens"] == 0 and body["usage"]["prompt_tokens"] > 0
    labels = ("negative", "neutral", "positive")
    for item, text in zip(body["data"], texts, strict=True):
        expected = hf_logits(tiny["clf"], text).softmax(-1)
        torch.testing.assert_close(torch.tensor(item["probs"]), expected, atol=1e-5, rtol=0)
        assert item["num_classes"] == 3 and item["label"] == labels[int(expected.argmax())]
    raw = await http.post("/classify", json={"model": "clf", "input": texts[0],
                                             "use_activation": False})  # fmt: skip
    expected = hf_logits(tiny["clf"], texts[0])
    torch.testing.assert_close(torch.tensor(raw.json()["data"][0]["probs"]), expected,
                               atol=1e-4, rtol=0)  # fmt: skip


async def test_cross_encoder_score_and_rerank_match_transformers(stack, tiny) -> None:
    http, _ = stack
    expected = [hf_logits(tiny["cross"], QUERY, d).sigmoid().item() for d in DOCUMENTS]
    reply = await http.post("/v1/score", json={"model": "cross", "queries": QUERY,
                                               "documents": DOCUMENTS})  # fmt: skip
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["id"].startswith("score-") and [d["index"] for d in body["data"]] == [0, 1, 2]
    assert [d["object"] for d in body["data"]] == ["score"] * 3
    assert [d["score"] for d in body["data"]] == pytest.approx(expected, abs=1e-5)

    reply = await http.post("/rerank", json={"model": "cross", "query": QUERY,
                                             "documents": DOCUMENTS, "top_n": 2})  # fmt: skip
    results = reply.json()["results"]
    order = sorted(range(3), key=lambda i: -expected[i])[:2]
    assert [r["index"] for r in results] == order
    assert results[0]["document"] == {"text": DOCUMENTS[order[0]]}
    assert results[0]["relevance_score"] == pytest.approx(expected[order[0]], abs=1e-5)


async def test_score_pairing_rules(stack) -> None:
    http, _ = stack
    zipped = await http.post("/score", json={"model": "cross", "text_1": ["a", "b"],
                                             "text_2": ["c", "d"]})  # fmt: skip
    assert len(zipped.json()["data"]) == 2
    bad = await http.post("/score", json={"model": "cross", "queries": ["a", "b"],
                                          "documents": ["c", "d", "e"]})  # fmt: skip
    assert bad.status_code == 400 and "1:1, 1:N or N:N" in bad.json()["error"]["message"]
    image = {"content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}
    bad = await http.post("/score", json={"model": "cross", "queries": "a", "documents": image})
    assert bad.status_code == 400 and "Multimodal" in bad.json()["error"]["message"]


async def test_endpoints_the_model_cannot_serve(stack) -> None:
    http, _ = stack
    cases = [
        ("/v1/embeddings", {"model": "clf", "input": "x"}, "Embeddings"),
        ("/score", {"model": "clf", "queries": "a", "documents": "b"}, "Score"),
        ("/v1/completions", {"model": "cross", "prompt": "x"}, "Completions"),
    ]
    for path, body, api in cases:
        reply = await http.post(path, json=body)
        assert reply.status_code == 501, reply.text
        error = reply.json()["error"]
        assert error["message"] == f"The model does not support {api} API"
        assert error["type"] == "NotImplementedError"
    reply = await http.post("/pooling", json={"model": "clf", "input": "x", "task": "embed"})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "task"
    reply = await http.post("/classify", json={"model": "clf", "input": "x", "normalize": True})
    assert reply.status_code == 400 and "use_activation" in reply.json()["error"]["message"]


async def test_capabilities_say_what_each_model_does(stack) -> None:
    _, target = stack
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await models_pb2_grpc.ModelsServiceStub(channel).ListModels(
            models_pb2.ListModelsRequest()
        )
    capabilities = {m.name: set(m.capabilities) for m in reply.models}
    base = {models_pb2.CAPABILITY_TOKENIZE, models_pb2.CAPABILITY_POOL}
    assert capabilities["clf"] == base | {models_pb2.CAPABILITY_CLASSIFY}
    assert capabilities["cross"] == base | {models_pb2.CAPABILITY_CLASSIFY,
                                            models_pb2.CAPABILITY_SCORE}  # fmt: skip
