"""Each sampling / stopping / output parameter has its effect through REST (and gRPC where
the field is the service's): the tokens, counts and finish reasons it should change, on
the demo model (EOS ids 2 and 0; id 1 is <|im_start|>, special but not EOS)."""

from __future__ import annotations

import json

import grpc
import httpx
import pytest

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc

pytestmark = pytest.mark.e2e

PROMPT = "The keeper climbed the stairs"  # greedy decoding repeats itself within 24 tokens
EOS, IM_START = 2, 1
FORCE_EOS = {"logit_bias": {str(EOS): 100}}
FORCE_IM_START = {"logit_bias": {str(IM_START): 100}, "ignore_eos": True}
CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


def _post(servers, path: str, body: dict) -> dict:
    reply = httpx.post(f"{servers.http_url}{path}", json={"model": "demo", **body}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _complete(servers, **body) -> dict:
    body = {"prompt": PROMPT, "return_token_ids": True, **body}
    reply = _post(servers, "/v1/completions", body)
    return reply["choices"][0] | {"usage": reply["usage"]}


def _sse(servers, path: str, body: dict) -> list[dict]:
    with httpx.stream(
        "POST", f"{servers.http_url}{path}", json={"model": "demo", **body}, timeout=60
    ) as reply:
        lines = [line for line in reply.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_min_tokens_masks_eos_until_reached(servers) -> None:
    early = _complete(servers, max_tokens=10, **FORCE_EOS)
    assert early["token_ids"] == [EOS] and early["finish_reason"] == "stop"
    held = _complete(servers, max_tokens=10, min_tokens=5, **FORCE_EOS)
    assert held["token_ids"][-1] == EOS and EOS not in held["token_ids"][:5]
    assert len(held["token_ids"]) == 6 and held["finish_reason"] == "stop"


def test_ignore_eos_reaches_max_tokens(servers) -> None:
    reply = _complete(servers, max_tokens=6, ignore_eos=True, **FORCE_EOS)
    assert reply["token_ids"] == [EOS] * 6 and reply["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 6


def test_stop_token_ids_stop_with_the_id_as_stop_reason(servers) -> None:
    free = _complete(servers, max_tokens=8, temperature=0)["token_ids"]
    at = next(i for i in range(2, 8) if free[i] not in free[:i])
    stopped = _complete(servers, max_tokens=8, temperature=0, stop_token_ids=[free[at]])
    assert stopped["token_ids"] == free[: at + 1]
    assert stopped["finish_reason"] == "stop" and stopped["stop_reason"] == free[at]


def test_seed_is_reproducible_and_seeds_differ(servers) -> None:
    body = {"max_tokens": 12, "temperature": 1.0, "ignore_eos": True}
    first = _complete(servers, seed=11, **body)["token_ids"]
    assert _complete(servers, seed=11, **body)["token_ids"] == first
    assert _complete(servers, seed=12, **body)["token_ids"] != first


def test_top_k_one_is_greedy_whatever_the_seed(servers) -> None:
    body = {"max_tokens": 12, "ignore_eos": True}
    greedy = _complete(servers, temperature=0, **body)["token_ids"]
    for seed in (1, 2):
        assert _complete(servers, temperature=1.0, top_k=1, seed=seed, **body)["token_ids"] == (
            greedy
        )
    assert _complete(servers, temperature=1.0, seed=1, **body)["token_ids"] != greedy


@pytest.mark.parametrize("penalty", ["frequency_penalty", "presence_penalty"])
def test_penalties_change_greedy_output_from_the_first_repeat(servers, penalty) -> None:
    body = {"max_tokens": 24, "temperature": 0, "ignore_eos": True}
    plain = _complete(servers, **body)["token_ids"]
    first_repeat = next(i for i in range(len(plain)) if plain[i] in plain[:i])
    penalised = _complete(servers, **{penalty: 2.0}, **body)["token_ids"]
    # Only tokens already generated are penalised: nothing changes before the first repeat.
    assert penalised[:first_repeat] == plain[:first_repeat]
    assert penalised != plain


def test_best_of_returns_the_n_most_likely_candidates(servers) -> None:
    """best_of candidate i is the request seeded seed + i; the n returned are those with
    the highest cumulative logprob, best first."""
    body = {"max_tokens": 6, "temperature": 1.0, "logprobs": 0, "ignore_eos": True}
    seed = 3
    candidates = [_complete(servers, seed=seed + i, **body) for i in range(4)]
    sums = [sum(c["logprobs"]["token_logprobs"]) for c in candidates]
    ranked = sorted(range(4), key=lambda i: sums[i], reverse=True)
    assert ranked[:2] != [0, 1]  # the first n are not the answer: the choice is tested
    reply = _post(
        servers, "/v1/completions", {"prompt": PROMPT, "n": 2, "best_of": 4, "seed": seed, **body}
    )
    assert [c["text"] for c in reply["choices"]] == [candidates[i]["text"] for i in ranked[:2]]
    returned = [sum(c["logprobs"]["token_logprobs"]) for c in reply["choices"]]
    assert returned == pytest.approx([sums[i] for i in ranked[:2]])


def test_truncate_prompt_tokens_keeps_the_last_tokens(servers, grpc_channel) -> None:
    long_prompt = "one two three four five six seven eight nine ten " * 4
    reply = _complete(servers, prompt=long_prompt, max_tokens=2, truncate_prompt_tokens=5)
    assert reply["usage"]["prompt_tokens"] == 5
    chat = _post(
        servers,
        "/v1/chat/completions",
        {**CHAT, "max_tokens": 2, "truncate_prompt_tokens": 4, "return_token_ids": True},
    )
    assert chat["usage"]["prompt_tokens"] == 4 and len(chat["prompt_token_ids"]) == 4
    stub = generate_pb2_grpc.GenerateServiceStub(grpc_channel)
    full = stub.Generate(
        pb.GenerateRequest(
            text=long_prompt,
            stopping=params_pb2.StoppingParams(max_tokens=1),
            output=params_pb2.OutputOptions(return_prompt_token_ids=True),
        ),
        timeout=60,
    )
    cut = stub.Generate(
        pb.GenerateRequest(
            text=long_prompt,
            stopping=params_pb2.StoppingParams(max_tokens=1),
            output=params_pb2.OutputOptions(return_prompt_token_ids=True),
            prompt_options=params_pb2.PromptOptions(truncate_prompt_tokens=5),
        ),
        timeout=60,
    )
    assert list(cut.prompt.token_ids) == list(full.prompt.token_ids)[-5:]
    assert cut.usage.prompt_tokens == 5


def test_max_completion_tokens_wins_over_max_tokens(servers) -> None:
    body = {**CHAT, "max_tokens": 3, "max_completion_tokens": 5, "ignore_eos": True}
    assert _post(servers, "/v1/chat/completions", body)["usage"]["completion_tokens"] == 5


def test_chat_echo_prepends_the_last_message(servers) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Tell a story"},
            {"role": "assistant", "content": "Once upon"},
        ],
        "add_generation_prompt": False, "continue_final_message": True, "echo": True,
        "max_tokens": 4, "temperature": 0, "ignore_eos": True,
    }  # fmt: skip
    message = _post(servers, "/v1/chat/completions", body)["choices"][0]["message"]
    plain = _post(servers, "/v1/chat/completions", {**body, "echo": False})["choices"][0]
    assert message["content"] == "Once upon" + plain["message"]["content"]
    assert message["role"] == "assistant"
    chunks = _sse(servers, "/v1/chat/completions", {**body, "stream": True})
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert contents[0] == ""  # the role chunk
    assert contents[1].startswith("Once upon")
    assert "".join(c or "" for c in contents) == message["content"]


def test_skip_special_tokens_through_rest(servers) -> None:
    kept = _complete(servers, max_tokens=2, skip_special_tokens=False, **FORCE_IM_START)
    assert kept["token_ids"] == [IM_START, IM_START]
    assert kept["text"] == "<|im_start|><|im_start|>"
    assert _complete(servers, max_tokens=2, **FORCE_IM_START)["text"] == ""
    chat = _post(
        servers,
        "/v1/chat/completions",
        {**CHAT, "max_tokens": 1, "skip_special_tokens": False, **FORCE_IM_START},
    )
    assert chat["choices"][0]["message"]["content"] == "<|im_start|>"


def test_chat_return_tokens_as_token_ids(servers) -> None:
    body = {
        **CHAT, "max_tokens": 4, "temperature": 0, "logprobs": True, "top_logprobs": 2,
        "return_tokens_as_token_ids": True, "return_token_ids": True,
    }  # fmt: skip
    choice = _post(servers, "/v1/chat/completions", body)["choices"][0]
    content = choice["logprobs"]["content"]
    assert [item["token"] for item in content] == [f"token_id:{t}" for t in choice["token_ids"]]
    for item in content:
        assert all(top["token"].startswith("token_id:") for top in item["top_logprobs"])
    # bytes stay the token's own bytes (docs/architecture.md), not the rendered name's
    raw = b"".join(bytes(item["bytes"]) for item in content)
    assert raw.decode("utf-8", errors="replace") == choice["message"]["content"]


def test_echo_with_max_tokens_zero_returns_the_prompt_only(servers, grpc_channel) -> None:
    body = {"max_tokens": 0, "echo": True}
    reply = _complete(servers, **body)
    assert reply["text"] == PROMPT and reply["token_ids"] == []
    assert reply["finish_reason"] == "length" and reply["usage"]["completion_tokens"] == 0
    with_logprobs = _complete(servers, logprobs=1, **body)
    tokens = with_logprobs["logprobs"]["tokens"]
    assert len(tokens) == reply["usage"]["prompt_tokens"] and "".join(tokens) == PROMPT
    chunks = _sse(servers, "/v1/completions", {"prompt": PROMPT, "stream": True, **body})
    assert "".join(c["choices"][0]["text"] for c in chunks) == PROMPT
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    stub = generate_pb2_grpc.GenerateServiceStub(grpc_channel)
    response = stub.Generate(
        pb.GenerateRequest(
            text=PROMPT,
            stopping=params_pb2.StoppingParams(max_tokens=0),
            output=params_pb2.OutputOptions(echo=True),
        ),
        timeout=60,
    )
    assert response.choices[0].text == PROMPT and response.usage.completion_tokens == 0
    with pytest.raises(grpc.RpcError) as error:  # without echo, 0 is still invalid
        stub.Generate(
            pb.GenerateRequest(text=PROMPT, stopping=params_pb2.StoppingParams(max_tokens=0)),
            timeout=60,
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_removed_guided_fields_are_ignored_with_a_warning(servers) -> None:
    body = {"max_tokens": 6, "temperature": 0, "ignore_eos": True}
    plain = _complete(servers, **body)
    guided = _complete(servers, guided_choice=["zebra"], guided_regex="[0-9]+", **body)
    assert guided["text"] == plain["text"] != "zebra"  # not constrained
    warnings = [
        json.loads(line)
        for line in servers.log().splitlines()
        if line.startswith("{") and "removed field ignored" in line
    ]
    fields = {w.get("field") for w in warnings if w.get("level") == "warning"}
    assert {"guided_choice", "guided_regex"} <= fields
