"""`protoserve bench serve` end to end on the tiny model: it launches `protoserve serve`,
streams 4 requests x 8 tokens over the REST bridge and over gRPC, runs the offline engine
reference, and writes the results file and the plot. No transformers baseline, no timings
checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_bench_serve_smoke(tmp_path: Path):
    from service.cli import main

    out = tmp_path / "results"
    code = main([
        "bench", "serve", "--model", "tiny", "--model-root", str(tmp_path / "models"),
        "--num-prompts", "4", "--min-prompt-len", "16", "--max-prompt-len", "48",
        "--output-len", "8", "--runs", "1", "--max-concurrency", "4",
        "--backends", "openai", "grpc", "--transformers", "--kv-cache-memory", "64m",
        "--threads", "1", "--out-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is True
    systems = results["systems"]
    assert set(systems) == {"protoserve_openai", "protoserve_grpc", "offline_engine"}
    for name in ("protoserve_openai", "protoserve_grpc"):
        summary = systems[name]
        assert summary["failed"] == 0 and summary["ttft_s"]["n"] == 4
        assert summary["runs"][0]["output_tokens"] == 4 * 8
    assert results["targets"]["bridge_vs_offline"]["value"] > 0
    server = results["servers"]["protoserve"]
    assert len(server["peak_rss_mib"]) >= 2  # the service and its bridge child
    assert server["engine_after_runs"]["all_free"] is True
    # Both backends sent the same prompts, each under its own cache_salt: the second found
    # none of the first's blocks (random prompts share no full block otherwise).
    assert server["engine_after_runs"]["prefix_cache_queries"] > 0
    assert server["engine_after_runs"]["prefix_cache_hits"] == 0
    assert (out / "serve.png").stat().st_size > 0
