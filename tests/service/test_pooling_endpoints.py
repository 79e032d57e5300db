"""POST /pooling and PoolingService.Pool, /v1/embeddings with chat `messages` and with
use_activation=false, /score with use_activation, fp8 embed dtypes, and the vLLM fields
this server refuses instead of ignoring — on tiny random BERTs (a sentence-transformers
MEAN embedder, a classifier, a cross-encoder) through the real service and bridge app,
against transformers."""

from __future__ import annotations

import base64

import grpc
import jsonschema
import numpy as np
import pytest
import torch

from protoserve.pooling.v1 import pooling_pb2, pooling_pb2_grpc
from tests.pooling_models import build, hf_mean_embeddings
from tests.service.pooling_stack import pooling_stack

TEXTS = ["the quick brown fox", "jumps over the lazy dog tonight"]
TEMPLATE = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
CONVERSATION = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi"}]

# api-surface.md §9.5: {id:"pooling-…", object:"list", created, model,
# data:[{index, object:"pooling", data: nested list | base64}], usage}
POOLING_SCHEMA = {
    "type": "object",
    "required": ["id", "object", "created", "model", "data", "usage"],
    "properties": {
        "id": {"type": "string", "pattern": "^pooling-"},
        "object": {"const": "list"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "data": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["index", "object", "data"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "object": {"const": "pooling"},
                    "data": {"type": ["array", "string"]},
                },
            },
        },
        "usage": {
            "type": "object",
            "required": ["prompt_tokens", "total_tokens", "completion_tokens"],
            "properties": {"completion_tokens": {"const": 0}},
        },
    },
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("pooling-endpoints")
    return {
        "embed": build("bert", root, seed=21, sentence_transformers="MEAN"),
        "clf": build("bert_classifier", root, seed=22),
        "cross": build("bert_cross_encoder", root, seed=23),
    }


@pytest.fixture(scope="module")
async def stack(tiny):
    models = {name: m.path for name, m in tiny.items()}
    async with pooling_stack(models, trust_request_chat_template=True) as served:
        yield served


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny["embed"].path)


def hf_hidden(tiny, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return tiny["embed"].hf(input_ids=torch.tensor([ids])).last_hidden_state[0]


async def test_pooling_embed_and_token_embed_in_float_and_base64(stack, tiny, tokenizer) -> None:
    http, _ = stack
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]
    reply = await http.post("/pooling", json={"model": "embed", "input": TEXTS, "task": "embed"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    jsonschema.validate(body, POOLING_SCHEMA)
    assert [d["index"] for d in body["data"]] == [0, 1] and body["model"] == "embed"
    assert body["usage"]["prompt_tokens"] == sum(len(i) for i in ids)
    expected = hf_mean_embeddings(tiny["embed"].hf, ids)
    torch.testing.assert_close(torch.tensor([d["data"] for d in body["data"]]), expected,
                               atol=1e-5, rtol=0)  # fmt: skip
    default = await http.post("/pooling", json={"model": "embed", "input": TEXTS})  # model's task
    assert [d["data"] for d in default.json()["data"]] == [
        pytest.approx(d["data"], abs=1e-6) for d in body["data"]
    ]

    tokens = await http.post("/pooling", json={"model": "embed", "input": TEXTS[1],
                             "task": "token_embed", "use_activation": False})  # fmt: skip
    jsonschema.validate(tokens.json(), POOLING_SCHEMA)
    matrix = torch.tensor(tokens.json()["data"][0]["data"])
    assert matrix.shape == (len(ids[1]), 32)
    torch.testing.assert_close(matrix, hf_hidden(tiny, ids[1]), atol=1e-4, rtol=0)

    encoded = await http.post("/pooling", json={"model": "embed", "input": TEXTS[1],
                              "task": "token_embed", "encoding_format": "base64"})  # fmt: skip
    jsonschema.validate(encoded.json(), POOLING_SCHEMA)
    raw = np.frombuffer(base64.b64decode(encoded.json()["data"][0]["data"]), dtype="<f4")
    normalized = torch.nn.functional.normalize(hf_hidden(tiny, ids[1]), dim=-1)
    assert raw.reshape(len(ids[1]), 32) == pytest.approx(normalized.numpy(), abs=1e-5)


async def test_pooling_classify_task_and_refusals(stack) -> None:
    http, _ = stack
    pooled = await http.post("/pooling", json={"model": "clf", "input": TEXTS, "task": "classify"})
    classified = await http.post("/classify", json={"model": "clf", "input": TEXTS})
    jsonschema.validate(pooled.json(), POOLING_SCHEMA)
    assert [d["data"] for d in pooled.json()["data"]] == [
        pytest.approx(d["probs"], abs=1e-6) for d in classified.json()["data"]
    ]
    for body, param in [
        ({"model": "embed", "input": "x", "task": "classify"}, "task"),
        ({"model": "embed", "input": "x", "task": "plugin"}, "task"),
        ({"model": "clf", "input": "x", "task": "classify", "dimensions": 8}, "dimensions"),
    ]:
        reply = await http.post("/pooling", json=body)
        assert reply.status_code == 400 and reply.json()["error"]["param"] == param, reply.text


async def test_pool_rpc(stack, tiny, tokenizer) -> None:
    _, target = stack
    ids = tokenizer(TEXTS[0])["input_ids"]
    request = pooling_pb2.PoolRequest(
        model="embed",
        inputs=[pooling_pb2.PoolingInput(text=TEXTS[0])],
        task=pooling_pb2.POOLING_TASK_TOKEN_EMBED,
        options=pooling_pb2.PoolingOptions(use_activation=False),
    )
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pooling_pb2_grpc.PoolingServiceStub(channel)
        reply = await stub.Pool(request)
        embed = await stub.Pool(pooling_pb2.PoolRequest(
            model="embed", inputs=[pooling_pb2.PoolingInput(text=TEXTS[0])]))  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.Pool(pooling_pb2.PoolRequest(
                model="embed", inputs=[pooling_pb2.PoolingInput(text="x")],
                task=pooling_pb2.POOLING_TASK_CLASSIFY))  # fmt: skip
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "classify" in error.value.details()
    [item] = reply.data
    assert list(item.data.shape) == [len(ids), 32] and reply.model == "embed"
    assert reply.usage.prompt_tokens == len(ids)
    matrix = torch.tensor(list(item.data.values)).reshape(len(ids), 32)
    torch.testing.assert_close(matrix, hf_hidden(tiny, ids), atol=1e-4, rtol=0)
    assert list(embed.data[0].data.shape) == [32]
    expected = hf_mean_embeddings(tiny["embed"].hf, [ids])[0]
    torch.testing.assert_close(torch.tensor(list(embed.data[0].data.values)), expected,
                               atol=1e-5, rtol=0)  # fmt: skip


async def test_embeddings_of_chat_messages(stack, tiny, tokenizer) -> None:
    http, _ = stack
    body = {"model": "embed", "messages": CONVERSATION, "chat_template": TEMPLATE}
    reply = await http.post("/v1/embeddings", json=body)
    assert reply.status_code == 200, reply.text
    rendered = "user: hello there\nassistant: hi\n"  # no generation prompt, no special tokens
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    expected = hf_mean_embeddings(tiny["embed"].hf, [ids])[0]
    [item] = reply.json()["data"]
    torch.testing.assert_close(torch.tensor(item["embedding"]), expected, atol=1e-5, rtol=0)
    assert reply.json()["usage"]["prompt_tokens"] == len(ids)
    two = {**body, "messages": [CONVERSATION, CONVERSATION[:1]]}  # a batch of conversations
    reply = await http.post("/v1/embeddings", json=two)
    assert [d["index"] for d in reply.json()["data"]] == [0, 1]
    batched = reply.json()["data"][0]["embedding"]  # padded beside a shorter one
    assert batched == pytest.approx(item["embedding"], abs=1e-5)
    untemplated = await http.post("/v1/embeddings", json={"model": "embed",
                                  "messages": CONVERSATION})  # fmt: skip
    assert untemplated.status_code == 400, untemplated.text  # the checkpoint has no template


async def test_use_activation_false_gives_raw_vectors_and_logits(stack, tiny, tokenizer) -> None:
    http, _ = stack
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]
    raw = await http.post("/v1/embeddings", json={"model": "embed", "input": TEXTS,
                          "use_activation": False})  # fmt: skip
    vectors = torch.tensor([d["embedding"] for d in raw.json()["data"]])
    expected = hf_mean_embeddings(tiny["embed"].hf, ids, normalize=False)
    torch.testing.assert_close(vectors, expected, atol=1e-4, rtol=0)
    assert not torch.allclose(vectors.norm(dim=-1), torch.ones(2), atol=1e-3)

    from transformers import AutoTokenizer

    cross = AutoTokenizer.from_pretrained(tiny["cross"].path)
    with torch.no_grad():
        logits = [tiny["cross"].hf(**cross(TEXTS[0], d, return_tensors="pt")).logits[0, 0].item()
                  for d in TEXTS]  # fmt: skip
    for activation, expected_scores in ((False, logits), (True, torch.tensor(logits).sigmoid())):
        reply = await http.post("/score", json={"model": "cross", "queries": TEXTS[0],
                                "documents": TEXTS, "use_activation": activation})  # fmt: skip
        scores = [d["score"] for d in reply.json()["data"]]
        assert scores == pytest.approx(list(map(float, expected_scores)), abs=1e-5)


@pytest.mark.parametrize("dtype", ["fp8_e4m3", "fp8_e5m2"])
async def test_fp8_embed_dtypes(stack, dtype) -> None:
    http, _ = stack
    floats = await http.post("/v1/embeddings", json={"model": "embed", "input": TEXTS[0]})
    reply = await http.post("/v1/embeddings", json={"model": "embed", "input": TEXTS[0],
                            "encoding_format": "base64", "embed_dtype": dtype})  # fmt: skip
    assert reply.status_code == 200, reply.text
    raw = base64.b64decode(reply.json()["data"][0]["embedding"])
    vector = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    float8 = torch.float8_e4m3fn if dtype == "fp8_e4m3" else torch.float8_e5m2
    expected = torch.tensor(floats.json()["data"][0]["embedding"]).to(float8)
    assert vector.tolist() == expected.view(torch.uint8).tolist()


@pytest.mark.parametrize(
    "field,value",
    [
        ("padding", "max_length"),
        ("mm_processor_kwargs", {"num_crops": 4}),
        ("media_io_kwargs", {"video": {"num_frames": 8}}),
        ("late_chunking_params", {"chunk_size": 4}),
    ],
)
async def test_unimplemented_fields_are_refused_by_name(stack, field, value) -> None:
    http, _ = stack
    requests = [
        ("/v1/embeddings", {"model": "embed", "input": "x"}),
        ("/pooling", {"model": "embed", "input": "x", "task": "token_embed"}),
        ("/classify", {"model": "clf", "input": "x"}),
        ("/score", {"model": "cross", "queries": "a", "documents": "b"}),
        ("/rerank", {"model": "cross", "query": "a", "documents": ["b"]}),
    ]
    for path, body in requests:
        reply = await http.post(path, json={**body, field: value})
        assert reply.status_code == 400, (path, reply.text)
        assert reply.json()["error"]["param"] == field and field in reply.text
        fine = await http.post(path, json={**body, "padding": "do_not_pad",
                               "mm_processor_kwargs": None, "media_io_kwargs": {}})  # fmt: skip
        assert fine.status_code == 200, (path, fine.text)
