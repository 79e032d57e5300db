"""`protoserve bench throughput` end to end on the tiny model: 4 requests x 8 tokens, no
transformers baselines, one run. Checks the results file and the plot, never timings."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.models import MODELS, count_parameters, ensure_model


def test_tiny_model_is_built_once_and_covers_its_vocabulary(model_root: Path):
    from transformers import AutoTokenizer

    path = ensure_model("tiny", model_root)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert ensure_model("tiny", model_root) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp  # cached, not rebuilt
    config = json.loads((path / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    assert len(tokenizer) == config["vocab_size"] == MODELS["tiny"].vocab_size
    assert tokenizer.chat_template and (path / "generation_config.json").is_file()
    assert 90e6 < count_parameters(MODELS["small"]) < 110e6


def test_bench_throughput_smoke(model_root: Path, tmp_path: Path):
    from service.cli import main

    out = tmp_path / "results"
    code = main([
        "bench", "throughput", "--model", "tiny", "--model-root", str(model_root),
        "--num-requests", "4", "--output-len", "8", "--runs", "1", "--no-hf",
        "--decode-batch", "4", "--decode-steps", "2", "--decode-warmup", "1",
        "--prefix-len", "64", "--kv-cache-memory", "64m", "--out-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    engine = results["systems"]["engine"]
    assert [r["output_tokens"] for r in engine["runs"]] == [32]
    assert engine["runs"][0]["prompt_tokens"] >= 4 * 64
    assert engine["output_tok_s"]["n"] == 1 and engine["ttft_s"]["n"] == 4
    assert set(results["systems"]) == {"engine"}
    assert results["decode_step"]["batch_sizes_seen"] == [4]
    run = results["decode_step"]["runs"][0]
    assert len(run["linear_s"]) == len(run["linear_engine_s"]) == len(run["step_s"]) == 2
    assert results["decode_step"]["ratio_engine"] > 0
    assert results["prefix_cache"]["runs"][0]["prompt_tokens"] == 64 + 16
    kv = results["kv_cache"]
    assert kv["all_free_at_end"] and kv["integrity"] == "ok" and kv["peak_used_blocks"] > 0
    assert results["peak_rss_mib"]["process_peak"] > 0 and results["complete"] is True
    assert results["versions"]["torch"] and results["machine"]["usable_cpus"] >= 1
    assert (out / "throughput.png").stat().st_size > 0


def test_bench_throughput_with_transformers_baselines(model_root: Path, tmp_path: Path):
    from service.cli import main

    out = tmp_path / "results"
    code = main([
        "bench", "throughput", "--model", "tiny", "--model-root", str(model_root),
        "--num-requests", "4", "--output-len", "8", "--runs", "1",
        "--hf-sequential-requests", "3", "--hf-batch-sizes", "2", "--hf-cb-attn",
        "--decode-batch", "2", "--decode-steps", "1", "--decode-warmup", "1",
        "--prefix-len", "32", "--kv-cache-memory", "64m", "--out-dir", str(out), "--no-plot",
    ])  # fmt: skip
    assert code == 0
    systems = json.loads((out / "results.json").read_text())["systems"]
    assert set(systems) == {"engine", "hf_sequential", "hf_static_b2"}
    # the one-at-a-time baseline runs in two halves around the engine's pass, recorded as one
    (sequential,) = systems["hf_sequential"]["runs"]
    assert sequential["num_requests"] == 3 and sequential["output_tokens"] == 3 * 8
    assert [r["output_tokens"] for r in systems["hf_static_b2"]["runs"]] == [4 * 8]
