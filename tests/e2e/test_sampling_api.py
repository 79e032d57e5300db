"""Logprobs, penalties, n/best_of and beam search through the whole stack: values equal
transformers' log_softmax on the demo model (raw logits), OpenAI's completions and chat
logprobs shapes (streamed too), echo, prompt_logprobs, token_id rendering, and the
official SDK's view of them."""

from __future__ import annotations

import json

import grpc
import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc

pytestmark = pytest.mark.e2e

PROMPT = "The keeper climbed the stairs"


@pytest.fixture(scope="module")
def hf(demo_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir, dtype=torch.float32).eval()
    return tokenizer, model


def _logprobs_after(hf, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return hf[1](torch.tensor([ids])).logits[0].log_softmax(-1)


def _post(servers, path: str, body: dict) -> dict:
    reply = httpx.post(f"{servers.http_url}{path}", json={"model": "demo", **body}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _sse(servers, path: str, body: dict) -> list[dict]:
    with httpx.stream(
        "POST", f"{servers.http_url}{path}", json={"model": "demo", **body}, timeout=60
    ) as reply:
        lines = [line for line in reply.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_completion_logprobs_are_raw_model_logprobs(servers, hf) -> None:
    body = {
        "prompt": PROMPT, "max_tokens": 6, "logprobs": 3, "temperature": 1.5, "seed": 4,
        "repetition_penalty": 1.3, "return_token_ids": True,
    }  # fmt: skip
    choice = _post(servers, "/v1/completions", body)["choices"][0]
    prompt_ids = hf[0](PROMPT).input_ids
    reference = _logprobs_after(hf, prompt_ids + choice["token_ids"])
    logprobs = choice["logprobs"]
    assert len(logprobs["tokens"]) == len(choice["token_ids"]) == 6
    offset = 0
    for step, token_id in enumerate(choice["token_ids"]):
        row = reference[len(prompt_ids) - 1 + step]
        assert logprobs["token_logprobs"][step] == pytest.approx(row[token_id].item(), abs=1e-4)
        top = logprobs["top_logprobs"][step]
        assert 3 <= len(top) <= 4  # the sampled token, then the 3 most likely
        values = sorted(top.values(), reverse=True)
        for expected in row.topk(3).values.tolist():  # the 3 most likely are all there
            assert min(abs(v - expected) for v in values) < 1e-4
        assert logprobs["text_offset"][step] == offset
        offset += len(logprobs["tokens"][step])


def test_chat_logprobs_bytes_and_stream(servers) -> None:
    body = {
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "temperature": 0,
        "logprobs": True, "top_logprobs": 2,
    }  # fmt: skip
    reply = _post(servers, "/v1/chat/completions", body)
    content = reply["choices"][0]["logprobs"]["content"]
    assert len(content) == 5 and reply["choices"][0]["logprobs"]["refusal"] is None
    raw = b"".join(bytes(item["bytes"]) for item in content)
    assert raw.decode("utf-8", errors="replace") == reply["choices"][0]["message"]["content"]
    for item in content:
        assert [t["logprob"] for t in item["top_logprobs"]] == sorted(
            (t["logprob"] for t in item["top_logprobs"]), reverse=True
        )
        assert item["top_logprobs"][0]["logprob"] == item["logprob"]  # greedy: the best
    chunks = _sse(servers, "/v1/chat/completions", {**body, "stream": True})
    streamed = [
        entry
        for c in chunks
        for ch in c["choices"]
        if ch["logprobs"]
        for entry in ch["logprobs"]["content"]
    ]
    assert streamed == content


def test_echo_prompt_logprobs_and_token_ids(servers, hf) -> None:
    body = {
        "prompt": PROMPT, "max_tokens": 3, "temperature": 0, "echo": True, "logprobs": 1,
        "prompt_logprobs": 2, "return_tokens_as_token_ids": True,
    }  # fmt: skip
    choice = _post(servers, "/v1/completions", body)["choices"][0]
    prompt_ids = hf[0](PROMPT).input_ids
    logprobs = choice["logprobs"]
    assert len(logprobs["tokens"]) == len(prompt_ids) + 3
    assert logprobs["tokens"][0] == f"token_id:{prompt_ids[0]}"
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    prompt_logprobs = choice["prompt_logprobs"]
    assert prompt_logprobs[0] is None and len(prompt_logprobs) == len(prompt_ids)
    reference = _logprobs_after(hf, prompt_ids)
    for position in range(1, len(prompt_ids)):
        entry = prompt_logprobs[position][str(prompt_ids[position])]
        assert entry["logprob"] == pytest.approx(
            reference[position - 1, prompt_ids[position]].item(), abs=1e-4
        )
        assert logprobs["token_logprobs"][position] == pytest.approx(entry["logprob"])
    chunks = _sse(servers, "/v1/completions", {**body, "prompt_logprobs": None, "stream": True})
    tokens = [
        t for c in chunks for ch in c["choices"] if ch["logprobs"] for t in ch["logprobs"]["tokens"]
    ]
    assert tokens == logprobs["tokens"]


def test_penalties_n_best_of_and_beam_search(servers, openai_client) -> None:
    reply = openai_client.completions.create(
        model="demo", prompt=PROMPT, max_tokens=8, n=2, temperature=1.0, seed=3,
        presence_penalty=1.5, frequency_penalty=1.0, logit_bias={"5": 3},
        extra_body={"min_p": 0.05, "top_k": 40, "bad_words": ["the"], "min_tokens": 2},
    )  # fmt: skip
    assert len(reply.choices) == 2 and all(c.text for c in reply.choices)
    best = _post(
        servers, "/v1/completions",
        {"prompt": PROMPT, "max_tokens": 6, "n": 2, "best_of": 4, "temperature": 1.0, "seed": 1},
    )  # fmt: skip
    assert [c["index"] for c in best["choices"]] == [0, 1] and best["usage"][
        "completion_tokens"
    ] == 12
    assert all(c["logprobs"] is None for c in best["choices"])
    beams = _post(
        servers, "/v1/completions",
        {"prompt": PROMPT, "max_tokens": 5, "n": 3, "use_beam_search": True, "logprobs": 1},
    )  # fmt: skip
    sums = [sum(c["logprobs"]["token_logprobs"]) for c in beams["choices"]]
    assert len(beams["choices"]) == 3 and sums == sorted(sums, reverse=True)
    chat_beams = _post(
        servers, "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "n": 2,
         "use_beam_search": True, "stream": False},
    )  # fmt: skip
    assert len(chat_beams["choices"]) == 2


def test_grpc_logprobs_and_prompt_logprobs_in_stream(grpc_channel) -> None:
    stub = generate_pb2_grpc.GenerateServiceStub(grpc_channel)
    request = pb.GenerateRequest(
        text=PROMPT,
        sampling=params_pb2.SamplingParams(temperature=0),
        stopping=params_pb2.StoppingParams(max_tokens=4),
        output=params_pb2.OutputOptions(logprobs=2, prompt_logprobs=1, logprob_token_ids=[7, 9]),
    )
    messages = list(stub.GenerateStream(request, timeout=60))
    prompt = messages[0].prompt
    assert len(prompt.prompt_logprobs) == prompt.num_tokens
    assert prompt.prompt_logprobs[0].chosen.rank == 0
    deltas = [m.delta for m in messages if m.WhichOneof("event") == "delta"]
    entries = [e for d in deltas for e in d.logprobs]
    assert len(entries) == 4
    for entry in entries:
        assert [t.token_id for t in entry.requested] == [7, 9] and len(entry.top) == 2
        assert entry.chosen.rank == 1 and entry.chosen.token_id == entry.top[0].token_id
    with pytest.raises(grpc.RpcError) as error:
        list(
            stub.GenerateStream(
                pb.GenerateRequest(
                    text="x", sampling=params_pb2.SamplingParams(use_beam_search=True)
                ),
                timeout=30,
            )
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
