"""benchmarks/audio_bench.py end to end on short clips (one run, the tiny demo Whisper
built by the benchmark): the results file and every measurement it names — never
timings."""

from __future__ import annotations

import json
import math

from benchmarks import audio_bench


def test_audio_bench_smoke(tmp_path, capsys) -> None:
    out = tmp_path / "results"
    argv = ["--runs", "1", "--short-seconds", "1", "--long-seconds", "2",
            "--concurrency", "2", "--stream-seconds", "1", "--out-dir", str(out)]  # fmt: skip
    assert audio_bench.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["runs"] == 1 and results["audio"] in ("espeak-ng", "synthetic")
    expected = {
        "rtf_1s", "rtf_2s_long_form", "rtf_2x1s_concurrent", "hf_generate_rtf_1s",
        "grpc_commit_to_first_delta_s", "grpc_commit_to_result_s",
        "ws_commit_to_first_delta_s", "ws_commit_to_done_s",
    }  # fmt: skip
    assert set(results["raw"]) == set(results["summary"]) == expected
    for key, values in results["raw"].items():
        assert len(values) == 1 and all(math.isfinite(v) and v > 0 for v in values), key
    assert results["machine"]
    assert "transformers generate RTF / protoserve RTF (1 s clip)" in capsys.readouterr().out
