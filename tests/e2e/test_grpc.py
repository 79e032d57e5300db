"""The native API from Python stubs: Generate and Chat (unary and streaming),
Tokenize, models, health, reflection, request ids, Abort and not-yet-served RPCs."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protoserve.common.v1 import chat_pb2, output_pb2, params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc
from protoserve.models.v1 import models_pb2, models_pb2_grpc
from protoserve.pooling.v1 import pooling_pb2, pooling_pb2_grpc
from protoserve.tokenizer.v1 import tokenizer_pb2, tokenizer_pb2_grpc

pytestmark = pytest.mark.e2e

GREEDY = params_pb2.SamplingParams(temperature=0)


@pytest.fixture
def generate(grpc_channel) -> generate_pb2_grpc.GenerateServiceStub:
    return generate_pb2_grpc.GenerateServiceStub(grpc_channel)


def test_health_is_serving(grpc_channel) -> None:
    stub = health_pb2_grpc.HealthStub(grpc_channel)
    for service in ("", "protoserve.generate.v1.GenerateService"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_every_service(grpc_channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc_channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for r in replies for s in r.list_services_response.service}
    for package in ("generate", "pooling", "scoring", "tokenizer", "audio", "models", "responses"):
        assert any(n.startswith(f"protoserve.{package}.v1.") for n in names), package
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_unary_generate_with_request_id(generate) -> None:
    reply = generate.Generate(
        pb.GenerateRequest(
            text="Bread is",
            sampling=GREEDY,
            stopping=params_pb2.StoppingParams(max_tokens=8, ignore_eos=True),
        ),
        metadata=(("x-request-id", "grpc-test-1"),),
        timeout=60,
    )
    assert reply.request_id == "grpc-test-1" and reply.model == "demo"
    [choice] = reply.choices
    assert len(choice.token_ids) == 8 and choice.finish.reason == output_pb2.FINISH_REASON_LENGTH
    assert reply.usage.completion_tokens == 8 and reply.prompt.num_tokens > 0


def test_streaming_generate_matches_unary(generate) -> None:
    request = pb.GenerateRequest(
        token_ids=output_pb2.TokenIds(ids=[5, 6, 7, 8]),
        sampling=GREEDY,
        stopping=params_pb2.StoppingParams(max_tokens=20),
    )
    unary = generate.Generate(request, timeout=60)
    events = list(generate.GenerateStream(request, timeout=60))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "prompt" and kinds[-1] == "end" and set(kinds[1:-1]) == {"delta"}
    deltas = [e.delta for e in events[1:-1]]
    assert "".join(d.text for d in deltas) == unary.choices[0].text
    assert [t for d in deltas for t in d.token_ids] == list(unary.choices[0].token_ids)
    assert deltas[-1].HasField("finish") and not any(d.HasField("finish") for d in deltas[:-1])
    end = events[-1].end.usage
    assert (end.prompt_tokens, end.completion_tokens) == (
        unary.usage.prompt_tokens,
        unary.usage.completion_tokens,
    )


def test_chat_unary_and_stream(generate) -> None:
    request = pb.ChatRequest(
        messages=[chat_pb2.ChatMessage(role="user", content="Hello!")],
        sampling=GREEDY,
        stopping=params_pb2.StoppingParams(max_tokens=16),
        output=params_pb2.OutputOptions(return_prompt_text=True),
    )
    unary = generate.Chat(request, timeout=60)
    assert unary.choices[0].message.role == "assistant"
    assert unary.prompt.text == "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
    events = list(generate.ChatStream(request, timeout=60))
    deltas = [e.delta for e in events if e.WhichOneof("event") == "delta"]
    assert deltas[0].role == "assistant"
    assert "".join(d.content for d in deltas) == unary.choices[0].message.content


def test_tokenize_detokenize_and_render(grpc_channel) -> None:
    stub = tokenizer_pb2_grpc.TokenizerServiceStub(grpc_channel)
    reply = stub.Tokenize(
        tokenizer_pb2.TokenizeRequest(text="Bread is good", return_token_strs=True), timeout=10
    )
    assert reply.count == len(reply.tokens) == len(reply.token_strs) and reply.max_model_len == 512
    text = stub.Detokenize(tokenizer_pb2.DetokenizeRequest(tokens=reply.tokens), timeout=10).text
    assert text == "Bread is good"
    chat = tokenizer_pb2.ChatInput(messages=[chat_pb2.ChatMessage(role="user", content="hi")])
    rendered = stub.RenderChat(tokenizer_pb2.RenderChatRequest(chat=chat), timeout=10)
    counted = stub.Tokenize(tokenizer_pb2.TokenizeRequest(chat=chat), timeout=10)
    assert list(rendered.token_ids) == list(counted.tokens)


def test_models_info_has_capabilities_and_stats(grpc_channel) -> None:
    stub = models_pb2_grpc.ModelsServiceStub(grpc_channel)
    info = stub.GetModel(models_pb2.GetModelRequest(name="demo-alias"), timeout=10)
    assert info.name == "demo" and list(info.aliases) == ["demo", "demo-alias"]
    assert {models_pb2.CAPABILITY_GENERATE, models_pb2.CAPABILITY_CHAT} <= set(info.capabilities)
    assert info.stats.kv_blocks_total > 0 and info.architecture == "LlamaForCausalLM"
    with pytest.raises(grpc.RpcError) as error:
        stub.GetModel(models_pb2.GetModelRequest(name="nope"), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_rpc_the_model_cannot_serve_is_unimplemented(grpc_channel) -> None:
    stub = pooling_pb2_grpc.PoolingServiceStub(grpc_channel)
    request = pooling_pb2.EmbedRequest(model="demo", inputs=[pooling_pb2.PoolingInput(text="x")])
    with pytest.raises(grpc.RpcError) as error:
        stub.Embed(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error.value.details() == "The model does not support Embeddings API"


def test_abort_ends_a_stream_with_finish_reason_abort(generate) -> None:
    request = pb.GenerateRequest(
        text="Bread", stopping=params_pb2.StoppingParams(max_tokens=400, ignore_eos=True)
    )
    stream = generate.GenerateStream(request, metadata=(("x-request-id", "to-abort"),), timeout=120)
    events = []

    def consume() -> None:
        events.extend(stream)

    reader = threading.Thread(target=consume)
    reader.start()
    while not any(e.WhichOneof("event") == "delta" for e in list(events)):
        time.sleep(0.01)
    reply = generate.Abort(pb.AbortRequest(request_ids=["to-abort", "unknown"]), timeout=10)
    reader.join(timeout=30)
    assert list(reply.aborted) == ["to-abort"]
    finish = [
        e.delta.finish
        for e in events
        if e.WhichOneof("event") == "delta" and e.delta.HasField("finish")
    ]
    assert [f.reason for f in finish] == [output_pb2.FINISH_REASON_ABORT]
    assert events[-1].WhichOneof("event") == "end"
    assert events[-1].end.usage.completion_tokens < 400
