"""Fuzzing the bridge with schemathesis: requests generated from the bridge's own OpenAPI
document (valid bodies, and invalid ones), sent to real servers (the demo chat model,
all-MiniLM-L6-v2, a tiny classifier and the tiny Whisper), must never get a 5xx or hang.
The generation is derandomised (same cases every run); more than 1,000 requests in all.

Each case's `model` is set to a model that serves its endpoint, so cases get past the
model lookup into validation and the engines (unknown models, 404, and a model without
the endpoint's capability, a deliberate 501, are tested elsewhere)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from rest_bridge.app import create_app
from rest_bridge.settings import BridgeSettings
from tests.e2e.conftest import EMBED_MODEL
from tests.e2e.launch import Servers, start_serve, stop_serve
from tests.pooling_models import build, minilm_dir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLES = 40  # per operation and mode (20 operations, 2 modes; a few have no inputs)
MIN_REQUESTS = 1000
CALL_TIMEOUT_S = 60
POOLING_PATHS = ("/v1/embeddings", "/v2/embed", "/pooling", "score", "rerank")
CLASSIFIER = "classifier"  # a tiny random BERT sequence classifier
SEEDED = "seeded"
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE, SEEDED)


@pytest.fixture(scope="module")
def fuzz_servers(
    demo_model_dir: Path, whisper_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    classifier = build("bert_classifier", tmp_path_factory.mktemp("models")).path
    models = [f"{EMBED_MODEL}={minilm_dir()}", f"whisper={whisper_model_dir}"]
    servers = start_serve(
        [str(demo_model_dir), *models, f"{CLASSIFIER}={classifier}"],
        tmp_path_factory.mktemp("logs") / "fuzz.log",
        "--served-model-name", "demo",
        "--max-model-len", "128",  # keeps every generation short
        "--max-num-seqs", "16",
        "--shutdown-timeout", "5",
        "--disable-log-requests",
    )  # fmt: skip
    try:
        yield servers
    finally:
        code = stop_serve(servers)
    assert code == 0, servers.log()[-3000:]


# Valid inputs laid over generated bodies in a third pass, so the generated parameters
# (sampling, pooling, truncation, ...) meet real prompts instead of failing on empty ones.
HI = [{"role": "user", "content": "Hi"}]
SEEDS: dict[str, dict] = {
    "/v1/completions": {"prompt": "Bread is"},
    "/v1/chat/completions": {"messages": HI, "tools": None, "tool_choice": None},
    "/tokenize": {"prompt": "Bread is", "messages": None},
    "/detokenize": {"tokens": [5, 6, 7]},
    "/v1/embeddings": {"input": ["bread", "a loaf"], "messages": None},
    "/v2/embed": {"texts": ["bread"], "images": None, "inputs": None},
    "/pooling": {"input": "bread", "messages": None},
    "/classify": {"input": ["bread"], "messages": None},
    "/score": {"queries": "bread", "documents": ["a loaf", "rain"]},
    "/v1/score": {"text_1": "bread", "text_2": ["a loaf", "rain"]},
    "/rerank": {"query": "bread", "documents": ["a loaf", "rain"]},
    "/v1/rerank": {"query": "bread", "documents": ["a loaf", "rain"]},
    "/v2/rerank": {"query": "bread", "documents": ["a loaf", "rain"]},
    "/generative_scoring": {
        "query": "Is bread good?",
        "items": ["yes", "no"],
        "label_token_ids": [5, 6],
    },  # fmt: skip
}


def model_for(path: str) -> str:
    if path.startswith("/v1/audio/"):
        return "whisper"
    if path == "/classify":
        return CLASSIFIER
    return EMBED_MODEL if any(p in path for p in POOLING_PATHS) else "demo"


def operations() -> list:
    schema = schemathesis.openapi.from_dict(create_app(BridgeSettings()).openapi())
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(operation, mode, base_url: str, session: requests.Session, found: list, tally) -> int:
    """`mode`: a schemathesis GenerationMode, or SEEDED (positive over SEEDS)."""
    generation = schemathesis.GenerationMode.POSITIVE if mode == SEEDED else mode
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=generation))
    def run(case) -> None:
        nonlocal sent
        if isinstance(case.body, dict):
            if mode == SEEDED:
                case.body.update(SEEDS[operation.path])
            case.body["model"] = model_for(operation.path)
        sent += 1
        try:
            response = case.call(base_url=base_url, session=session, timeout=CALL_TIMEOUT_S)
        except requests.Timeout:
            found.append(
                f"{case.method} {case.path}: no answer in {CALL_TIMEOUT_S}s: {case.body!r}"
            )
            return
        tally[(operation.path, str(mode), response.status_code // 100)] += 1
        if response.status_code >= 500:
            found.append(
                f"{case.method} {case.path} -> {response.status_code} {response.text[:300]}"
                f"\n  body: {str(case.body)[:500]}"
            )

    try:
        run()
    except Unsatisfiable:  # negative mode, an operation without inputs: nothing to break
        assert generation == schemathesis.GenerationMode.NEGATIVE and sent == 0
    return sent


def test_no_generated_request_gets_a_server_error(fuzz_servers: Servers) -> None:
    found: list[str] = []
    tally: Counter[tuple[str, str, int]] = Counter()
    sent = 0
    with requests.Session() as session:
        for operation in operations():
            for mode in MODES:
                if mode == SEEDED and operation.path not in SEEDS:
                    continue
                sent += fuzz(operation, mode, fuzz_servers.http_url, session, found, tally)
    print(f"fuzz: {sent} requests; by path and status class: {sorted(tally.items())}")
    assert sent >= MIN_REQUESTS
    assert not found, f"{len(found)} of {sent} requests failed:\n" + "\n".join(found[:20])
    assert "Traceback" not in fuzz_servers.log(), fuzz_servers.log()[-5000:]
