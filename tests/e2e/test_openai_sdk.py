"""The official openai SDK against the bridge (which talks gRPC to the service)."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.e2e

PROMPT = "The lighthouse keeper climbed the stairs"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me about bread."},
]


def tokenize_count(servers, **body) -> int:
    reply = httpx.post(f"{servers.http_url}/tokenize", json=body, timeout=30)
    reply.raise_for_status()
    return reply.json()["count"]


def test_models_list(openai_client) -> None:
    models = openai_client.models.list()
    ids = [m.id for m in models.data]
    assert ids == ["demo", "demo-alias", "all-MiniLM-L6-v2"]
    assert models.data[0].model_extra["max_model_len"] == 512
    assert models.data[2].model_extra["max_model_len"] == 256  # sentence_bert_config.json


def test_completion_greedy_is_deterministic(openai_client) -> None:
    first = openai_client.completions.create(
        model="demo", prompt=PROMPT, max_tokens=24, temperature=0
    )
    second = openai_client.completions.create(
        model="demo-alias", prompt=PROMPT, max_tokens=24, temperature=0
    )
    assert first.choices[0].text == second.choices[0].text
    assert first.model == second.model == "demo"
    assert first.id.startswith("cmpl-")


def test_max_tokens_is_respected_with_finish_reason_length(openai_client, servers) -> None:
    reply = openai_client.completions.create(
        model="demo",
        prompt=PROMPT,
        max_tokens=5,
        temperature=0,
        extra_body={"ignore_eos": True, "return_token_ids": True},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 5 == len(choice.model_extra["token_ids"])
    assert reply.usage.prompt_tokens == tokenize_count(servers, prompt=PROMPT)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 5


def test_completion_stream_equals_unary(openai_client) -> None:
    unary = openai_client.completions.create(
        model="demo", prompt=PROMPT, max_tokens=30, temperature=0
    )
    chunks = list(
        openai_client.completions.create(
            model="demo",
            prompt=PROMPT,
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == unary.choices[0].text
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [unary.choices[0].finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == unary.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == unary.usage.prompt_tokens


def test_chat_greedy_stream_and_unary_agree(openai_client, servers) -> None:
    unary = openai_client.chat.completions.create(
        model="demo", messages=MESSAGES, max_tokens=30, temperature=0
    )
    again = openai_client.chat.completions.create(
        model="demo", messages=MESSAGES, max_tokens=30, temperature=0
    )
    assert unary.choices[0].message.content == again.choices[0].message.content
    assert unary.choices[0].message.role == "assistant"
    chunks = list(
        openai_client.chat.completions.create(
            model="demo",
            messages=MESSAGES,
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == unary.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == unary.usage.completion_tokens
    prompt_count = tokenize_count(servers, messages=MESSAGES)
    assert unary.usage.prompt_tokens == prompt_count == chunks[-1].usage.prompt_tokens


def _stop_candidate(text: str) -> str:
    """A short ASCII word from the middle of the text, to use as a stop string."""
    words = [m for m in re.finditer(r"[A-Za-z]{3,}", text) if m.start() > 5]
    assert words, f"no usable word in {text!r}"
    return words[len(words) // 2].group()


@pytest.fixture(scope="module")
def greedy_text(openai_client) -> str:
    """60 greedy tokens after PROMPT, with no stop string."""
    reply = openai_client.completions.create(
        model="demo", prompt=PROMPT, max_tokens=60, temperature=0
    )
    return reply.choices[0].text


def test_stop_strings_cut_and_are_not_included(openai_client, greedy_text) -> None:
    full, stop = greedy_text, _stop_candidate(greedy_text)
    reply = openai_client.completions.create(
        model="demo", prompt=PROMPT, max_tokens=60, temperature=0, stop=[stop, "\x00never"]
    )
    choice = reply.choices[0]
    assert choice.text == full[: full.index(stop)]
    assert stop not in choice.text
    assert choice.finish_reason == "stop" and choice.model_extra["stop_reason"] == stop
    streamed = "".join(
        c.choices[0].text
        for c in openai_client.completions.create(
            model="demo", prompt=PROMPT, max_tokens=60, temperature=0, stop=stop, stream=True
        )
    )
    assert streamed == choice.text


def test_include_stop_str_in_output(openai_client, greedy_text) -> None:
    full, stop = greedy_text, _stop_candidate(greedy_text)
    reply = openai_client.completions.create(
        model="demo",
        prompt=PROMPT,
        max_tokens=60,
        temperature=0,
        stop=stop,
        extra_body={"include_stop_str_in_output": True},
    )
    assert reply.choices[0].text == full[: full.index(stop) + len(stop)]


def test_n_returns_distinct_indexed_choices(openai_client) -> None:
    reply = openai_client.completions.create(
        model="demo", prompt=PROMPT, max_tokens=12, n=2, temperature=1.0, seed=7
    )
    assert [c.index for c in reply.choices] == [0, 1]
    chat = openai_client.chat.completions.create(
        model="demo",
        messages=MESSAGES,
        max_tokens=12,
        n=2,
        temperature=1.0,
        seed=7,
        extra_body={"return_token_ids": True},
    )
    assert [c.index for c in chat.choices] == [0, 1]
    lengths = [len(c.model_extra["token_ids"]) for c in chat.choices]
    assert chat.usage.completion_tokens == sum(lengths) and all(lengths)


def test_seeded_sampling_is_reproducible(openai_client) -> None:
    def sample() -> str:
        return (
            openai_client.completions.create(
                model="demo", prompt=PROMPT, max_tokens=16, temperature=1.0, seed=1234
            )
            .choices[0]
            .text
        )

    assert sample() == sample()


def test_multiple_prompts_are_flattened(openai_client) -> None:
    reply = openai_client.completions.create(
        model="demo", prompt=[PROMPT, "Bread is"], max_tokens=4, temperature=0
    )
    assert [c.index for c in reply.choices] == [0, 1]


def test_prefix_cache_hits_are_reported_in_usage(openai_client) -> None:
    prompt = "Rules for a tidy workshop: " + "put every tool back in its place. " * 12
    first = openai_client.completions.create(model="demo", prompt=prompt, max_tokens=2)
    second = openai_client.completions.create(model="demo", prompt=prompt, max_tokens=2)
    assert first.usage.prompt_tokens == second.usage.prompt_tokens > 64
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 64 and cached % 16 == 0 and cached < second.usage.prompt_tokens
    salted = openai_client.completions.create(
        model="demo", prompt=prompt, max_tokens=2, extra_body={"cache_salt": "tenant-b"}
    )
    assert salted.usage.prompt_tokens_details.cached_tokens == 0
