"""Embeddings, scores and reranking on the real servers with all-MiniLM-L6-v2: the
official openai SDK (float and base64), 2,048 inputs in one request, Cohere embed v2 and
Jina / Cohere rerank shapes, the errors of a model that cannot embed."""

from __future__ import annotations

import base64
import json

import grpc
import httpx
import numpy as np
import pytest

from protoserve.models.v1 import models_pb2, models_pb2_grpc
from tests.e2e.conftest import EMBED_MODEL

pytestmark = pytest.mark.e2e

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "It is raining."]
QUERY = "How do I bake bread at home?"
DOCUMENTS = [
    "The stock market closed higher on Friday.",
    "Mix flour, water, yeast and salt, knead the dough, let it rise, then bake it hot.",
    "Cats sleep for most of the day.",
    "The train to Paris leaves at nine.",
]


def post(servers, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{servers.http_url}{path}", json=body, timeout=60)


def test_sdk_float_and_base64_are_the_same_vectors(openai_client) -> None:
    floats = openai_client.embeddings.create(
        model=EMBED_MODEL, input=SENTENCES, encoding_format="float"
    )
    default = openai_client.embeddings.create(model=EMBED_MODEL, input=SENTENCES)  # base64
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    assert len(floats.data[0].embedding) == 384 and floats.model == EMBED_MODEL
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    vectors = np.array([d.embedding for d in floats.data])
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(1.0, abs=1e-5)
    assert vectors[0] @ vectors[1] > 0.5 > vectors[0] @ vectors[2]


def test_embeddings_equal_the_transformers_reference(servers) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from tests.pooling_models import minilm_dir

    reply = post(servers, "/v1/embeddings", {"model": EMBED_MODEL, "input": SENTENCES[1]})
    ours = np.array(reply.json()["data"][0]["embedding"])
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir()).eval()
    with torch.no_grad():
        hidden = model(**tokenizer(SENTENCES[1], return_tensors="pt")).last_hidden_state[0]
    expected = torch.nn.functional.normalize(hidden.mean(0), dim=-1).numpy()
    assert np.abs(ours - expected).max() < 1e-5


def test_2048_inputs_in_one_request(openai_client) -> None:
    texts = [f"sentence number {i} about {'bread' if i % 2 else 'trains'}" for i in range(2048)]
    reply = openai_client.embeddings.create(model=EMBED_MODEL, input=texts)
    assert [d.index for d in reply.data] == list(range(2048))
    assert all(len(d.embedding) == 384 for d in reply.data)


def test_token_ids_and_text_give_the_same_vector(servers) -> None:
    ids = httpx.post(f"{servers.http_url}/tokenize", json={"model": EMBED_MODEL,
                     "prompt": SENTENCES[0]}, timeout=30).json()["tokens"]  # fmt: skip
    both = post(servers, "/v1/embeddings", {"model": EMBED_MODEL, "input": [ids]})
    text = post(servers, "/v1/embeddings", {"model": EMBED_MODEL, "input": SENTENCES[0]})
    assert both.json()["data"][0]["embedding"] == text.json()["data"][0]["embedding"]


def test_bytes_encoding_with_metadata(servers) -> None:
    body = {"model": EMBED_MODEL, "input": SENTENCES[:2], "encoding_format": "bytes",
            "embed_dtype": "float16", "endianness": "big"}  # fmt: skip
    reply = post(servers, "/v1/embeddings", body)
    assert reply.headers["content-type"] == "application/octet-stream"
    meta = json.loads(reply.headers["metadata"])
    second = meta["data"][1]
    assert second["shape"] == [384] and second["end"] - second["start"] == 384 * 2
    vector = np.frombuffer(reply.content[second["start"] : second["end"]], dtype=">f2")
    floats = post(servers, "/v1/embeddings", {"model": EMBED_MODEL, "input": SENTENCES[1]})
    assert vector == pytest.approx(floats.json()["data"][0]["embedding"], abs=1e-3)


def test_rerank_puts_the_relevant_document_first(servers) -> None:
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        reply = post(servers, path, {"model": EMBED_MODEL, "query": QUERY,
                                     "documents": DOCUMENTS, "top_n": 2})  # fmt: skip
        assert reply.status_code == 200, reply.text
        body = reply.json()
        results = body["results"]
        assert [r["index"] for r in results][0] == 1 and len(results) == 2
        assert results[0]["document"] == {"text": DOCUMENTS[1]}
        assert results[0]["relevance_score"] > results[1]["relevance_score"]
        assert body["id"].startswith("score-") and body["usage"]["total_tokens"] > 0
        assert body["meta"]["api_version"]["version"] == ("2" if "v2" in path else "1")
    hidden = post(
        servers,
        "/v1/rerank",
        {"model": EMBED_MODEL, "query": QUERY, "documents": DOCUMENTS, "return_documents": False},
    )
    assert all("document" not in r for r in hidden.json()["results"])
    assert len(hidden.json()["results"]) == 4


def test_score_is_cosine_for_a_bi_encoder(servers, openai_client) -> None:
    reply = post(servers, "/score", {"model": EMBED_MODEL, "queries": SENTENCES[0],
                                     "documents": SENTENCES[1:]})  # fmt: skip
    body = reply.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1]
    vectors = [d.embedding for d in openai_client.embeddings.create(
        model=EMBED_MODEL, input=SENTENCES, encoding_format="float").data]  # fmt: skip
    expected = [float(np.dot(vectors[0], v)) for v in vectors[1:]]
    assert [d["score"] for d in body["data"]] == pytest.approx(expected, abs=1e-5)


def test_cohere_embed_v2_shape(servers) -> None:
    types = ["float", "int8", "uint8", "binary", "ubinary", "base64"]
    reply = post(servers, "/v2/embed", {"model": EMBED_MODEL, "texts": SENTENCES[:2],
                                        "embedding_types": types})  # fmt: skip
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["response_type"] == "embeddings_by_type" and body["texts"] == SENTENCES[:2]
    assert body["meta"]["api_version"] == {"version": "2"}
    assert body["meta"]["billed_units"]["input_tokens"] > 0
    embeddings = body["embeddings"]
    assert set(embeddings) == set(types)
    floats = np.array(embeddings["float"])
    decoded = np.frombuffer(base64.b64decode(embeddings["base64"][0]), dtype="<f4")
    assert decoded.tolist() == pytest.approx(floats[0].tolist(), abs=1e-7)
    assert len(embeddings["binary"][0]) == len(embeddings["ubinary"][0]) == 384 // 8
    assert np.unpackbits(np.array(embeddings["ubinary"][0], dtype=np.uint8)).tolist() == (
        (floats[0] > 0).astype(int).tolist()
    )
    assert all(-128 <= v <= 127 for v in embeddings["int8"][0])
    reply = post(servers, "/v2/embed", {"model": EMBED_MODEL, "texts": ["x"],
                                        "input_type": "search_query"})  # fmt: skip
    assert reply.status_code == 400 and "Unsupported input_type" in reply.text
    reply = post(servers, "/v2/embed", {"model": EMBED_MODEL, "texts": ["x"], "images": ["y"]})
    assert reply.status_code == 400


def test_errors(servers) -> None:
    reply = post(servers, "/v1/embeddings", {"model": "demo", "input": "x"})
    assert reply.status_code == 501
    assert reply.json()["error"] == {
        "message": "The model does not support Embeddings API",
        "type": "NotImplementedError",
        "param": None,
        "code": 501,
    }
    body = {"model": EMBED_MODEL, "query": "x", "items": ["y"], "label_token_ids": [5]}
    reply = post(servers, "/generative_scoring", body)
    assert reply.status_code == 501 and "Generative Scoring" in reply.json()["error"]["message"]
    cases = [
        ({"dimensions": 64}, "dimensions", "Matryoshka"),
        ({"normalize": True}, "normalize", "use_activation"),
        ({"input": "word " * 300}, "input_tokens", "maximum context length is 256"),
        ({"encoding_format": "hex"}, None, "encoding_format"),
    ]
    for extra, param, text in cases:
        reply = post(servers, "/v1/embeddings", {"model": EMBED_MODEL, "input": "x", **extra})
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert text in error["message"] and (param is None or error["param"] == param)
    long = post(servers, "/v1/embeddings", {"model": EMBED_MODEL, "input": "word " * 300,
                                            "truncate_prompt_tokens": -1})  # fmt: skip
    assert long.status_code == 200 and long.json()["usage"]["prompt_tokens"] == 256


def test_capabilities(grpc_channel) -> None:
    stub = models_pb2_grpc.ModelsServiceStub(grpc_channel)
    info = stub.GetModel(models_pb2.GetModelRequest(name=EMBED_MODEL), timeout=10)
    assert info.architecture == "BertModel" and info.max_model_len == 256
    assert set(info.capabilities) == {
        models_pb2.CAPABILITY_EMBED, models_pb2.CAPABILITY_SCORE, models_pb2.CAPABILITY_POOL,
        models_pb2.CAPABILITY_TOKENIZE,
    }  # fmt: skip
    demo = stub.GetModel(models_pb2.GetModelRequest(name="demo"), timeout=10)
    assert models_pb2.CAPABILITY_EMBED not in demo.capabilities
    with pytest.raises(grpc.RpcError):
        stub.GetModel(models_pb2.GetModelRequest(name="nope"), timeout=10)
