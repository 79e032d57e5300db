"""Server sampling defaults end to end: a model whose generation_config.json sets
temperature, top_k, repetition / presence / frequency penalties, skip_special_tokens and
max_new_tokens, served twice — as is with `--override-generation-config` (max_new_tokens),
and with `--generation-config vllm` (no defaults) — and observed through REST and gRPC
on seeded and greedy outputs (each default changes the tokens; a request's own value,
0 included, wins)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc
from tests.e2e.launch import Servers, serving

pytestmark = pytest.mark.e2e

SAMPLING_DEFAULTS = {"temperature": 0.5, "top_k": 3}
PENALTY_DEFAULTS = {"repetition_penalty": 1.6, "presence_penalty": 2.0, "frequency_penalty": 1.0}
NEUTRAL = {
    "temperature": 1.0, "top_k": 0, "repetition_penalty": 1.0,
    "presence_penalty": 0.0, "frequency_penalty": 0.0,
}  # fmt: skip
FILE_MAX_NEW_TOKENS, OVERRIDE_MAX_NEW_TOKENS = 40, 24
PROMPT = "The keeper climbed the stairs"  # greedy decoding repeats itself within 24 tokens
IM_START = "<|im_start|>"  # a special token (id 1) that is not EOS
SEEDED = {"prompt": PROMPT, "max_tokens": 10, "seed": 7, "ignore_eos": True}
GREEDY = {"prompt": PROMPT, "max_tokens": OVERRIDE_MAX_NEW_TOKENS, "temperature": 0.0}
SPECIAL = {"prompt": PROMPT, "max_tokens": 2, "logit_bias": {"1": 100}, "ignore_eos": True}


LIMITS = ("--max-model-len", "512", "--max-num-seqs", "8")


@pytest.fixture(scope="module")
def model_dir(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model with sampling defaults in its generation_config.json."""
    out = tmp_path_factory.mktemp("gen-config") / "model"
    shutil.copytree(demo_model_dir, out)
    config = json.loads((out / "generation_config.json").read_text())
    config |= SAMPLING_DEFAULTS | PENALTY_DEFAULTS
    config |= {"skip_special_tokens": False, "max_new_tokens": FILE_MAX_NEW_TOKENS}
    (out / "generation_config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def configured(model_dir: Path, tmp_path_factory) -> Iterator[Servers]:
    override = json.dumps({"max_new_tokens": OVERRIDE_MAX_NEW_TOKENS})
    args = [str(model_dir), "--served-model-name", "demo", "--override-generation-config", override]
    with serving(
        args[:1], tmp_path_factory.mktemp("logs") / "configured.log", *LIMITS, *args[1:]
    ) as servers:
        yield servers


@pytest.fixture(scope="module")
def neutral(model_dir: Path, tmp_path_factory) -> Iterator[Servers]:
    args = [str(model_dir), "--served-model-name", "demo", "--generation-config", "vllm"]
    with serving(
        args[:1], tmp_path_factory.mktemp("logs") / "neutral.log", *LIMITS, *args[1:]
    ) as servers:
        yield servers


def _completion(servers: Servers, body: dict) -> dict:
    body = {"model": "demo", "return_token_ids": True, **body}
    reply = httpx.post(f"{servers.http_url}/v1/completions", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0] | {"usage": reply.json()["usage"]}


def _ids(servers: Servers, body: dict) -> list[int]:
    return _completion(servers, body)["token_ids"]


def _grpc(servers: Servers, **fields) -> pb.CompletionChoice:
    with grpc.insecure_channel(servers.grpc_target) as channel:
        stub = generate_pb2_grpc.GenerateServiceStub(channel)
        return stub.Generate(pb.GenerateRequest(text=PROMPT, **fields), timeout=60).choices[0]


def test_vllm_generation_config_applies_no_default(neutral) -> None:
    assert _ids(neutral, SEEDED) == _ids(neutral, SEEDED | NEUTRAL)
    assert IM_START not in _completion(neutral, SPECIAL)["text"]
    assert _completion(neutral, GREEDY | {"max_tokens": 30})["usage"]["completion_tokens"] == 30


def test_sampling_defaults_apply_and_request_values_win(configured) -> None:
    default = _ids(configured, SEEDED)
    assert default == _ids(configured, SEEDED | SAMPLING_DEFAULTS | PENALTY_DEFAULTS)
    for name in SAMPLING_DEFAULTS:  # each default changes the draw; the request's own wins
        assert _ids(configured, SEEDED | {name: NEUTRAL[name]}) != default, name


def test_penalty_defaults_apply_and_explicit_neutral_values_win(configured, neutral) -> None:
    """Greedy, so only the penalties change the tokens: each default alone changes them,
    and a request's explicit 0 (or 1.0) turns it off."""
    plain = _ids(neutral, GREEDY)
    assert len(set(plain)) < len(plain)  # repeats: the penalties have something to change
    all_off = {name: NEUTRAL[name] for name in PENALTY_DEFAULTS}
    assert _ids(configured, GREEDY | all_off) == plain
    for name in PENALTY_DEFAULTS:
        others_off = {k: v for k, v in all_off.items() if k != name}
        assert _ids(configured, GREEDY | others_off) != plain, name


def test_skip_special_tokens_default_and_override(configured) -> None:
    assert IM_START in _completion(configured, SPECIAL)["text"]
    assert IM_START not in _completion(configured, SPECIAL | {"skip_special_tokens": True})["text"]
    chat = {
        "model": "demo", "messages": [{"role": "user", "content": "Hi"}],
        "logit_bias": {"1": 100}, "max_tokens": 2,
    }  # fmt: skip
    reply = httpx.post(f"{configured.http_url}/v1/chat/completions", json=chat, timeout=60)
    assert IM_START in reply.json()["choices"][0]["message"]["content"], reply.text


def test_max_new_tokens_override_caps_the_budget(configured) -> None:
    capped = _completion(configured, GREEDY | {"max_tokens": 30, "ignore_eos": True})
    assert capped["usage"]["completion_tokens"] == OVERRIDE_MAX_NEW_TOKENS
    assert capped["finish_reason"] == "length"
    chat = {"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "ignore_eos": True}
    reply = httpx.post(f"{configured.http_url}/v1/chat/completions", json=chat, timeout=60)
    assert reply.json()["usage"]["completion_tokens"] == OVERRIDE_MAX_NEW_TOKENS, reply.text


def test_grpc_sees_the_same_defaults(configured, neutral) -> None:
    seeded = _grpc(
        configured,
        sampling=params_pb2.SamplingParams(seed=7),
        stopping=params_pb2.StoppingParams(max_tokens=10, ignore_eos=True),
    )
    assert list(seeded.token_ids) == _ids(configured, SEEDED)
    zero_penalties = _grpc(
        configured,
        sampling=params_pb2.SamplingParams(temperature=0.0),
        penalties=params_pb2.PenaltyParams(
            repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0
        ),
        stopping=params_pb2.StoppingParams(max_tokens=OVERRIDE_MAX_NEW_TOKENS),
    )
    assert list(zero_penalties.token_ids) == _ids(neutral, GREEDY)
    special = _grpc(
        configured,
        penalties=params_pb2.PenaltyParams(logit_bias={1: 100.0}),
        stopping=params_pb2.StoppingParams(max_tokens=2, ignore_eos=True),
    )
    assert IM_START in special.text
