"""Response bodies validate against OpenAI's own OpenAPI schemas (extra fields allowed).

The document is read from ../shared/reference/openai-openapi.yaml beside the clone.
Error bodies are not checked against it: like vLLM, `code` is the integer HTTP status."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

pytestmark = pytest.mark.e2e

SPEC = Path(__file__).resolve().parents[3] / "shared" / "reference" / "openai-openapi.yaml"
SPEC_URI = "urn:openai-openapi"


def _nullable_to_json_schema(node):
    """OpenAPI 3.0's `nullable: true` (still used in parts of the document) as JSON Schema."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable_to_json_schema(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        elif "type" not in node:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@lru_cache(maxsize=1)
def _registry() -> Registry:
    document = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    document = _nullable_to_json_schema(document)
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


def validate(instance: dict, schema_name: str) -> None:
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(schema, registry=_registry()).validate(instance)


def sse_payloads(servers, path: str, body: dict) -> list[dict]:
    with httpx.stream("POST", f"{servers.http_url}{path}", json=body, timeout=60) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


needs_spec = pytest.mark.skipif(not SPEC.is_file(), reason=f"{SPEC} not present")


@needs_spec
def test_models_list_shape(servers) -> None:
    validate(httpx.get(f"{servers.http_url}/v1/models", timeout=10).json(), "ListModelsResponse")


@needs_spec
def test_completion_shapes(servers) -> None:
    body = {"model": "demo", "prompt": "Bread is", "max_tokens": 8, "temperature": 0}
    reply = httpx.post(f"{servers.http_url}/v1/completions", json=body, timeout=60)
    validate(reply.json(), "CreateCompletionResponse")
    chunks = sse_payloads(
        servers,
        "/v1/completions",
        {**body, "stream": True, "stream_options": {"include_usage": True}},
    )
    for chunk in chunks[:-1]:
        # The spec has no chunk schema for legacy completions: OpenAI streams the response
        # schema with `finish_reason: null` until a choice ends, as we do. Every other
        # field is checked as is.
        for choice in chunk["choices"]:
            assert choice["finish_reason"] in (None, "stop", "length")
            choice["finish_reason"] = choice["finish_reason"] or "stop"
        validate(chunk, "CreateCompletionResponse")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    validate(chunks[-1]["usage"], "CompletionUsage")


@needs_spec
def test_chat_completion_shapes(servers) -> None:
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 8,
        "temperature": 0,
    }
    reply = httpx.post(f"{servers.http_url}/v1/chat/completions", json=body, timeout=60)
    validate(reply.json(), "CreateChatCompletionResponse")
    chunks = sse_payloads(
        servers,
        "/v1/chat/completions",
        {**body, "n": 1, "stream": True, "stream_options": {"include_usage": True}},
    )
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert "usage" not in chunks[0] and chunks[-1]["usage"]["total_tokens"] > 0


@needs_spec
def test_embedding_shapes(servers) -> None:
    from tests.e2e.conftest import EMBED_MODEL

    body = {"model": EMBED_MODEL, "input": ["Bread is", "made of flour"]}
    reply = httpx.post(f"{servers.http_url}/v1/embeddings", json=body, timeout=60)
    validate(reply.json(), "CreateEmbeddingResponse")
    base64_reply = httpx.post(
        f"{servers.http_url}/v1/embeddings", json={**body, "encoding_format": "base64"}, timeout=60
    ).json()
    # The spec types `embedding` as floats only; OpenAI sends a string for base64.
    assert all(isinstance(d["embedding"], str) for d in base64_reply["data"])
    for item in base64_reply["data"]:
        item["embedding"] = [0.0]
    validate(base64_reply, "CreateEmbeddingResponse")


@needs_spec
def test_logprobs_shapes(servers) -> None:
    """Completions' and chat's logprobs objects, unary and streamed."""
    body = {"model": "demo", "prompt": "Bread is", "max_tokens": 6, "logprobs": 2, "seed": 1}
    reply = httpx.post(f"{servers.http_url}/v1/completions", json=body, timeout=60).json()
    assert reply["choices"][0]["logprobs"]["tokens"]
    validate(reply, "CreateCompletionResponse")
    for chunk in sse_payloads(servers, "/v1/completions", {**body, "stream": True}):
        for choice in chunk["choices"]:
            choice["finish_reason"] = choice["finish_reason"] or "stop"
        validate(chunk, "CreateCompletionResponse")
    chat = {
        "model": "demo",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 6,
        "logprobs": True,
        "top_logprobs": 3,
    }
    reply = httpx.post(f"{servers.http_url}/v1/chat/completions", json=chat, timeout=60).json()
    assert len(reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 3
    validate(reply, "CreateChatCompletionResponse")
    chunks = sse_payloads(servers, "/v1/chat/completions", {**chat, "stream": True})
    assert any(c["choices"] and c["choices"][0]["logprobs"] for c in chunks)
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")


def _response_events(servers, body: dict) -> list[dict]:
    """The typed events of a Responses stream (`event:` / `data:` pairs, no [DONE])."""
    with httpx.stream("POST", f"{servers.http_url}/v1/responses", json=body, timeout=60) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        data = [line for line in reply.iter_lines() if line.startswith("data: ")]
    return [json.loads(line.removeprefix("data: ")) for line in data]


@needs_spec
def test_responses_shapes(servers) -> None:
    """Unary, retrieved and streamed Responses, with logprobs and a json_schema format."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body = {
        "model": "demo",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        "instructions": "Answer in JSON.",
        "max_output_tokens": 40,
        "temperature": 0,
        "include": ["message.output_text.logprobs"],
        "top_logprobs": 2,
        "metadata": {"case": "shapes"},
        "text": {"format": {"type": "json_schema", "name": "n", "schema": schema}},
        "structured_outputs": {"disable_any_whitespace": True},
    }
    reply = httpx.post(f"{servers.http_url}/v1/responses", json=body, timeout=60).json()
    assert reply["output"][0]["content"][0]["logprobs"], reply
    validate(reply, "Response")
    stored = httpx.get(f"{servers.http_url}/v1/responses/{reply['id']}", timeout=10).json()
    assert stored == reply
    events = _response_events(servers, {**body, "stream": True})
    for event in events:
        validate(event, "ResponseStreamEvent")
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    validate(events[-1]["response"], "Response")
