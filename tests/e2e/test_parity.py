"""Greedy output through the whole stack (REST -> gRPC -> engine) equals Hugging Face
transformers `generate` on the same model, token for token: one request alone, and 8
concurrent requests of different prompt lengths submitted at different times."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

pytestmark = pytest.mark.e2e

MAX_NEW_TOKENS = 32
PROMPTS = [
    "Bread",
    "The keeper climbed the stairs of the old tower",
    "How many legs does a spider have? A spider has",
    "In autumn the garden slows down. The tomatoes give their last red fruit, the beans",
    "Dear Anna, thank you for your letter",
    "Put every tool back in its place when you finish with it. Keep the floor clear, so "
    "that nobody trips over a cable or a board. Wear eye protection when you cut",
    "Computers count in twos",
    "When you ask a question to a language model running on a server, many small steps "
    "happen in a fraction of a second. Your words are first split into tokens",
]


@pytest.fixture(scope="module")
def reference(demo_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir, dtype=torch.float32).eval()
    expected = {}
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(
                ids,
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        expected[prompt] = (ids[0].tolist(), out[0, ids.shape[1] :].tolist())
    return expected


def complete(servers, prompt_ids: list[int]) -> list[int]:
    reply = httpx.post(
        f"{servers.http_url}/v1/completions",
        timeout=120,
        json={
            "model": "demo",
            "prompt": prompt_ids,
            "max_tokens": MAX_NEW_TOKENS,
            "temperature": 0,
            "return_token_ids": True,
        },
    )
    reply.raise_for_status()
    return reply.json()["choices"][0]["token_ids"]


def test_single_request_matches_transformers(servers, reference) -> None:
    prompt_ids, expected = reference[PROMPTS[1]]
    assert complete(servers, prompt_ids) == expected


def test_staggered_concurrent_requests_match_transformers(servers, reference) -> None:
    results: dict[str, list[int]] = {}

    def run(prompt: str) -> None:
        results[prompt] = complete(servers, reference[prompt][0])

    threads = []
    for prompt in PROMPTS:
        thread = threading.Thread(target=run, args=(prompt,))
        thread.start()
        threads.append(thread)
        time.sleep(0.03)  # later requests join a batch that is already decoding
    for thread in threads:
        thread.join(timeout=120)
    for prompt in PROMPTS:
        assert results[prompt] == reference[prompt][1], prompt
