"""Bad input gets a clear error naming the field (REST and gRPC), and the server keeps
serving afterwards."""

from __future__ import annotations

import grpc
import httpx
import openai
import pytest
from google.rpc import error_details_pb2, status_pb2

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2, generate_pb2_grpc

pytestmark = pytest.mark.e2e


def post(servers, path: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{servers.http_url}{path}", timeout=30, **kwargs)


def assert_error(reply: httpx.Response, status: int, param: str | None) -> dict:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == status and error["message"] and error["type"]
    if param is not None:
        assert error["param"] == param, error
    return error


def still_serving(servers) -> None:
    reply = post(
        servers, "/v1/completions", json={"model": "demo", "prompt": "hello", "max_tokens": 2}
    )
    assert reply.status_code == 200, reply.text


def test_unknown_model_is_404(servers, openai_client) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        openai_client.completions.create(model="nope", prompt="x", max_tokens=2)
    assert "nope" in str(error.value)
    body = assert_error(
        post(
            servers,
            "/v1/chat/completions",
            json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
        ),
        404,
        "model",
    )
    assert body["type"] == "NotFoundError"
    still_serving(servers)


@pytest.mark.parametrize(
    "path,body,param",
    [
        ("/v1/completions", {"prompt": "x", "temperature": -1}, "temperature"),
        ("/v1/completions", {"prompt": "x", "max_tokens": -5}, "max_tokens"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "max_tokens": -5},
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "temperature": -1},
            "temperature",
        ),
        ("/v1/completions", {"prompt": "x", "top_p": 0}, "top_p"),
        ("/v1/completions", {"prompt": "x", "n": 0}, "n"),
        ("/v1/completions", {"prompt": "x", "n": 2, "temperature": 0}, "n"),
        ("/v1/completions", {"prompt": "x", "stop": [""]}, "stop"),
        ("/v1/completions", {"prompt": "x", "logit_bias": {"abc": 1}}, "logit_bias"),
        ("/v1/completions", {"prompt": "x", "presence_penalty": 2.5}, "presence_penalty"),
        ("/v1/completions", {"prompt": "x", "top_p": 1.5}, "top_p"),
        ("/v1/completions", {"prompt": "x", "min_p": 1.5}, "min_p"),
        ("/v1/completions", {"prompt": "x", "repetition_penalty": 0}, "repetition_penalty"),
        ("/v1/completions", {"prompt": "x", "n": 3, "best_of": 2}, "best_of"),
        ("/v1/completions", {"prompt": "x", "logprobs": 25}, "logprobs"),
        ("/v1/completions", {"prompt": "x", "prompt_logprobs": 21}, "prompt_logprobs"),
        ("/v1/completions", {"prompt": "x", "logit_bias": {"99999": 1}}, "logit_bias"),
        ("/v1/completions", {"prompt": "x", "allowed_token_ids": [99999]}, "allowed_token_ids"),
        ("/v1/completions", {"prompt": "x", "allowed_token_ids": []}, "allowed_token_ids"),
        ("/v1/completions", {"prompt": "x", "bad_words": [" "]}, "bad_words"),
        ("/v1/completions", {"prompt": "x", "logprob_token_ids": [5]}, "logprob_token_ids"),
        (
            "/v1/completions",
            {"prompt": "x", "use_beam_search": True, "stream": True},
            "use_beam_search",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "prompt_logprobs": 1, "stream": True},
            "prompt_logprobs",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "structured_outputs": {"json": {"type": "nonsense"}}},
            "structured_outputs.json",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "structured_outputs": {"json": '{"type": "object"'}},
            "structured_outputs.json",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "structured_outputs": {"regex": "(unclosed"}},
            "structured_outputs.regex",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "structured_outputs": {"grammar": "start: undefined_rule"}},
            "structured_outputs.grammar",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "structured_outputs": {"regex": "a", "choice": ["a"]}},
            "structured_outputs",
        ),
        ("/v1/completions", {"prompt": "x", "structured_outputs": {}}, "structured_outputs"),
        (
            "/v1/completions",
            {"prompt": "x", "structured_outputs": {"regex": "a", "backend": "xgrammar"}},
            "structured_outputs.backend",
        ),
        (
            "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema"},
            },
            "response_format",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 21},
            "logprobs",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
            "top_logprobs",
        ),
        ("/v1/completions", {"prompt": ""}, "prompt"),
        ("/v1/completions", {"prompt": "x", "priority": 1}, "priority"),
        ("/v1/completions", {"prompt": "x", "cache_salt": "a/b"}, "cache_salt"),
        (
            "/v1/completions",
            {"prompt": "x", "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        # Refused, never silently dropped (no reasoning parser, no repetition detector, no
        # plugins); a non-integer best_of is a type error, not a 500.
        ("/v1/completions", {"prompt": "x", "thinking_token_budget": 8}, "thinking_token_budget"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "thinking_token_budget": 8},
            "thinking_token_budget",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "thinking_token_budget": 1.5},
            "body.thinking_token_budget",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "repetition_detection": {"max_pattern_size": 4, "min_count": 2}},
            "repetition_detection",
        ),
        (
            "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "x"}],
                "repetition_detection": {"max_pattern_size": 4, "min_count": 2},
            },
            "repetition_detection",
        ),
        ("/v1/completions", {"prompt": "x", "vllm_xargs": {"k": 1}}, "vllm_xargs"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "extra_args": {"k": "v"}},
            "extra_args",
        ),
        ("/v1/completions", {"prompt": "x", "n": 2, "best_of": "4"}, "body.best_of"),
        ("/v1/completions", {"prompt": "x", "best_of": 2.5}, "body.best_of"),
        ("/v1/completions", {"prompt": "x", "best_of": True}, "body.best_of"),
    ],
)
def test_invalid_values_are_400_naming_the_field(servers, path, body, param) -> None:
    assert_error(post(servers, path, json=body), 400, param)
    still_serving(servers)


def test_wrong_types_are_400(servers) -> None:
    error = assert_error(
        post(servers, "/v1/completions", json={"prompt": "x", "max_tokens": "many"}), 400, None
    )
    assert "max_tokens" in error["message"] and error["param"] == "body.max_tokens"


def test_malformed_json_is_400(servers) -> None:
    reply = post(
        servers,
        "/v1/chat/completions",
        content=b'{"messages": [',
        headers={"content-type": "application/json"},
    )
    assert_error(reply, 400, None)
    reply = post(
        servers,
        "/v1/completions",
        content=b"prompt=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert "application/json" in assert_error(reply, 400, None)["message"]
    still_serving(servers)


def test_prompt_longer_than_max_model_len_is_400(servers) -> None:
    reply = post(servers, "/v1/completions", json={"prompt": "word " * 2000, "max_tokens": 2})
    error = assert_error(reply, 400, "input_tokens")
    assert "maximum context length is 512" in error["message"]
    reply = post(servers, "/v1/completions", json={"prompt": "x", "max_tokens": 10_000})
    assert_error(reply, 400, "max_tokens")
    still_serving(servers)


def test_grpc_errors_name_the_field(grpc_channel, servers) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(grpc_channel)
    cases = [
        (generate_pb2.GenerateRequest(model="nope", text="x"), grpc.StatusCode.NOT_FOUND, "nope"),
        (
            generate_pb2.GenerateRequest(
                text="x", sampling=params_pb2.SamplingParams(temperature=-1)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "temperature",
        ),
        (
            generate_pb2.GenerateRequest(
                text="x", stopping=params_pb2.StoppingParams(max_tokens=-5)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_tokens",
        ),
        (
            generate_pb2.GenerateRequest(text="word " * 2000),
            grpc.StatusCode.INVALID_ARGUMENT,
            "maximum context length",
        ),
        (
            generate_pb2.GenerateRequest(token_ids={"ids": [10**6]}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "out of vocabulary",
        ),
    ]
    for request, code, needle in cases:
        with pytest.raises(grpc.RpcError) as error:
            stub.Generate(request, timeout=30)
        assert error.value.code() == code
        assert needle in error.value.details()
    for fields, name in GRPC_INVALID:
        with pytest.raises(grpc.RpcError) as error:
            stub.Generate(generate_pb2.GenerateRequest(text="x", **fields), timeout=30)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _violated_field(error.value) == name  # google.rpc.BadRequest
        assert name.rsplit(".", 1)[-1] in error.value.details()
    chat = generate_pb2.ChatRequest(
        messages=[{"role": "user", "content": "x"}], thinking_token_budget=8
    )
    with pytest.raises(grpc.RpcError) as error:
        stub.Chat(chat, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "thinking_token_budget" in error.value.details()
    still_serving(servers)


def _violated_field(error: grpc.RpcError) -> str | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                bad_request = error_details_pb2.BadRequest()
                if detail.Unpack(bad_request) and bad_request.field_violations:
                    return bad_request.field_violations[0].field
    return None


GRPC_INVALID = [
    ({"sampling": params_pb2.SamplingParams(top_p=0)}, "top_p"),
    ({"sampling": params_pb2.SamplingParams(top_p=1.5)}, "top_p"),
    ({"sampling": params_pb2.SamplingParams(n=0)}, "n"),
    ({"sampling": params_pb2.SamplingParams(n=3, best_of=2, temperature=1)}, "best_of"),
    ({"output": params_pb2.OutputOptions(logprobs=21)}, "logprobs"),
    ({"penalties": params_pb2.PenaltyParams(logit_bias={99999: 1.0})}, "logit_bias"),
    (
        {"structured_output": params_pb2.StructuredOutput(json_schema='{"type": "object"')},
        "structured_outputs.json",
    ),
    (
        {"structured_output": params_pb2.StructuredOutput(json_schema='{"type": "nonsense"}')},
        "structured_outputs.json",
    ),
    ({"thinking_token_budget": 8}, "thinking_token_budget"),
    (
        {"stopping": params_pb2.StoppingParams(repetition_detection={"min_count": 2})},
        "repetition_detection",
    ),
]


def test_unknown_route_is_openai_error_json(servers) -> None:
    reply = httpx.get(f"{servers.http_url}/v1/models/demo", timeout=10)
    assert_error(reply, 404, None)


LONG_TEXT = "word " * 2000  # over both models' context (demo 512, MiniLM 256)


@pytest.mark.parametrize(
    "path,body",
    [
        ("/v1/completions", {"prompt": LONG_TEXT, "max_tokens": 2}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": LONG_TEXT}]}),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": LONG_TEXT}], "stream": True},
        ),  # fmt: skip
        ("/generative_scoring", {"query": LONG_TEXT, "items": ["y"], "label_token_ids": [5]}),
        ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": ["x", LONG_TEXT]}),
        ("/pooling", {"model": "all-MiniLM-L6-v2", "input": LONG_TEXT}),
        ("/score", {"model": "all-MiniLM-L6-v2", "text_1": "x", "text_2": LONG_TEXT}),
        ("/rerank", {"model": "all-MiniLM-L6-v2", "query": LONG_TEXT, "documents": ["y"]}),
    ],
    ids=[
        "completions",
        "chat",
        "chat-stream",
        "generative-scoring",
        "embeddings",
        "pooling",
        "score",
        "rerank",
    ],  # fmt: skip
)
def test_prompt_over_max_model_len_is_400_everywhere(servers, path: str, body: dict) -> None:
    """A streaming request too: the bridge waits for the service to accept the call
    before it sends its status line."""
    error = assert_error(post(servers, path, json=body), 400, None)
    assert "maximum context length" in error["message"], error
    still_serving(servers)
