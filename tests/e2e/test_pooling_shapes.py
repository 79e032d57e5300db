"""Complete response shapes (JSON schemas written from api-surface.md §9.4 / §10.3) of
Cohere /v2/embed, Cohere /v2/rerank and Jina /v1/rerank on all-MiniLM-L6-v2, Cohere's
billed units, and /v2/embed's `truncate` (NONE / START / END) with `max_tokens`."""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from tests.e2e.conftest import EMBED_MODEL

pytestmark = pytest.mark.e2e

QUERY = "How do I bake bread at home?"
DOCUMENTS = [
    "The stock market closed higher on Friday.",
    "Mix flour, water, yeast and salt, knead the dough, let it rise, then bake it hot.",
    "Cats sleep for most of the day.",
]
LONG = " ".join(f"{word}{i}" for i, word in enumerate(["apple", "river", "cloud", "stone"] * 40))

_INT = {"type": "integer"}


def _bytes(low: int, high: int) -> dict:
    return {"type": "array", "items": {"type": "array", "minItems": 48,
            "items": {"type": "integer", "minimum": low, "maximum": high}}}  # fmt: skip


# §9.4: {id, embeddings:{float:[[…]], binary:[[int8]], ubinary:[[uint8]], base64:[str]},
# texts, meta:{api_version:{version:"2"}, billed_units:{input_tokens, image_tokens}},
# response_type:"embeddings_by_type"} (int8 / uint8 too: Cohere's own types).
COHERE_EMBED = {
    "type": "object",
    "required": ["id", "embeddings", "texts", "meta", "response_type"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "embeddings": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "float": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "minItems": 384,
                        "maxItems": 384,
                        "items": {"type": "number"},
                    },
                },  # fmt: skip
                "int8": _bytes(-128, 127),
                "uint8": _bytes(0, 255),
                "binary": _bytes(-128, 127),
                "ubinary": _bytes(0, 255),
                "base64": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[A-Za-z0-9+/]+={0,2}$"},
                },  # fmt: skip
            },
        },
        "texts": {"type": "array", "items": {"type": "string"}},
        "meta": {
            "type": "object",
            "required": ["api_version", "billed_units"],
            "properties": {
                "api_version": {"const": {"version": "2"}},
                "billed_units": {
                    "type": "object",
                    "required": ["input_tokens", "image_tokens"],
                    "properties": {
                        "input_tokens": {**_INT, "minimum": 1},
                        "image_tokens": {"const": 0},
                    },  # fmt: skip
                },
            },
        },
        "response_type": {"const": "embeddings_by_type"},
    },
}

_RESULT = {
    "type": "object",
    "required": ["index", "relevance_score"],
    "properties": {
        "index": {**_INT, "minimum": 0},
        "relevance_score": {"type": "number"},
        "document": {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {"text": {"type": "string"}},
        },  # fmt: skip
    },
}
# §10.3, Jina: {model, usage:{total_tokens}, results:[{index, document:{text}, relevance_score}]}
JINA_RERANK = {
    "type": "object",
    "required": ["id", "model", "usage", "results"],
    "properties": {
        "model": {"const": EMBED_MODEL},
        "usage": {
            "type": "object",
            "required": ["total_tokens", "prompt_tokens"],
            "properties": {"total_tokens": {**_INT, "minimum": 1}},
        },  # fmt: skip
        "results": {
            "type": "array",
            "items": {**_RESULT, "required": [*_RESULT["required"], "document"]},
        },  # fmt: skip
    },
}
# §10.3, Cohere v2: {id, results:[{index, relevance_score}], meta:{api_version,
# billed_units:{search_units}}}
COHERE_RERANK = {
    "type": "object",
    "required": ["id", "results", "meta"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "results": {"type": "array", "items": _RESULT},
        "meta": {
            "type": "object",
            "required": ["api_version", "billed_units"],
            "properties": {
                "api_version": {"const": {"version": "2"}},
                "billed_units": {
                    "type": "object",
                    "required": ["search_units"],
                    "properties": {"search_units": {**_INT, "minimum": 1}},
                },
            },  # fmt: skip
        },
    },
}


def post(servers, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{servers.http_url}{path}", json={"model": EMBED_MODEL, **body}, timeout=60)


def test_cohere_embed_complete_shape(servers) -> None:
    types = ["float", "int8", "uint8", "binary", "ubinary", "base64"]
    reply = post(servers, "/v2/embed", {"texts": DOCUMENTS, "embedding_types": types})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    jsonschema.validate(body, COHERE_EMBED)
    assert body["texts"] == DOCUMENTS and set(body["embeddings"]) == set(types)
    assert all(len(v) == len(DOCUMENTS) for v in body["embeddings"].values())
    tokens = post(servers, "/v1/embeddings", {"input": DOCUMENTS}).json()["usage"]
    assert body["meta"]["billed_units"]["input_tokens"] == tokens["prompt_tokens"]
    only_float = post(servers, "/v2/embed", {"texts": DOCUMENTS[:1]}).json()  # default: float
    jsonschema.validate(only_float, COHERE_EMBED)
    assert set(only_float["embeddings"]) == {"float"}


def _vector(reply: httpx.Response, path: str) -> list[float]:
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body["embeddings"]["float"][0] if path == "/v2/embed" else body["data"][0]["embedding"]


def test_cohere_truncate_and_max_tokens(servers) -> None:
    def cohere(**fields):
        return post(servers, "/v2/embed", {"texts": [LONG], **fields})

    end = cohere(truncate="END", max_tokens=8)
    start = cohere(truncate="START", max_tokens=8)
    assert end.json()["meta"]["billed_units"]["input_tokens"] == 8
    assert start.json()["meta"]["billed_units"]["input_tokens"] == 8
    first = post(servers, "/v1/embeddings", {"input": LONG, "truncate_prompt_tokens": 8})
    last = post(servers, "/v1/embeddings", {"input": LONG, "truncate_prompt_tokens": 8,
                                            "truncation_side": "left"})  # fmt: skip
    assert _vector(end, "/v2/embed") == _vector(first, "")  # END cuts the end
    assert _vector(start, "/v2/embed") == _vector(last, "")  # START cuts the start
    assert _vector(end, "/v2/embed") != _vector(start, "/v2/embed")
    default = cohere()  # END to the model's context (256)
    assert default.json()["meta"]["billed_units"]["input_tokens"] == 256
    assert _vector(default, "/v2/embed") == _vector(cohere(truncate="END"), "/v2/embed")

    medium = " ".join(LONG.split()[:20])  # within the context, over max_tokens
    refused = post(servers, "/v2/embed", {"texts": [medium], "truncate": "NONE",
                                          "max_tokens": 8})  # fmt: skip
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "max_tokens"
    too_long = cohere(truncate="NONE")
    assert too_long.status_code == 400 and "maximum context length" in too_long.text
    fits = post(servers, "/v2/embed", {"texts": ["short text"], "truncate": "NONE",
                                       "max_tokens": 8})  # fmt: skip
    assert fits.status_code == 200 and fits.json()["meta"]["billed_units"]["input_tokens"] == 4
    bad = cohere(truncate="MIDDLE")
    assert bad.status_code == 400 and "truncate" in bad.text


def test_jina_rerank_complete_shape(servers) -> None:
    reply = post(servers, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    jsonschema.validate(body, JINA_RERANK)
    results = body["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2] and results[0]["index"] == 1
    assert [r["document"]["text"] for r in results] == [DOCUMENTS[r["index"]] for r in results]
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] > 0


def test_cohere_rerank_complete_shape_and_search_units(servers) -> None:
    reply = post(servers, "/v2/rerank", {"query": QUERY, "documents": DOCUMENTS, "top_n": 2,
                                         "return_documents": False})  # fmt: skip
    assert reply.status_code == 200, reply.text
    body = reply.json()
    jsonschema.validate(body, COHERE_RERANK)
    assert [r["index"] for r in body["results"]][:1] == [1] and len(body["results"]) == 2
    assert all("document" not in r for r in body["results"])
    assert body["meta"]["billed_units"]["search_units"] == 1
    many = [f"document number {i}" for i in range(150)]  # up to 100 documents a unit
    reply = post(servers, "/v2/rerank", {"query": QUERY, "documents": many, "top_n": 3})
    jsonschema.validate(reply.json(), COHERE_RERANK)
    assert reply.json()["meta"]["billed_units"]["search_units"] == 2
