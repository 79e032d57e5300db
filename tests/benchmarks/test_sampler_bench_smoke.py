"""benchmarks/sampler_bench.py end to end on the tiny model: batch 4, 2 timed steps,
8 tokens, one run. Checks the results file and the targets' verdicts, never timings."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import sampler_bench


def test_sampler_bench_smoke(model_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sampler.json"
    code = sampler_bench.main([
        "--model", "tiny", "--model-root", str(model_root), "--batch", "4",
        "--runs", "1", "--steps", "2", "--max-tokens", "8", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    results = json.loads(out.read_text())
    for name in ("sampler_features", "sampler_greedy"):
        assert 0 < results[name]["share"] < 1 and len(results[name]["runs"]) == 1
    assert results["unconstrained"]["tokens"] == 4 * 8  # ignore_eos: every token is made
    assert 0 < results["json_schema"]["tokens"] <= 4 * 8
    targets = results["targets"]
    assert targets["sampler_share_with_features"]["target"] == "<= 0.15"
    assert targets["json_schema_vs_unconstrained"]["target"] == ">= 0.7"
    share = results["sampler_features"]["share"]
    assert targets["sampler_share_with_features"]["met"] == (share <= 0.15)
    printed = capsys.readouterr().out
    assert "target sampler_share_with_features:" in printed and "batch 32" in printed
