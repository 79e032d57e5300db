"""benchmarks/embed_bench.py end to end on a handful of sentences (one run): the results
file, the recorded target verdict and the two sides' agreement — never timings."""

from __future__ import annotations

import json

from benchmarks import embed_bench


def test_embed_bench_smoke(tmp_path, capsys) -> None:
    out = tmp_path / "results"
    argv = ["--num-sentences", "12", "--runs", "1", "--batch-size", "4", "--threads", "1",
            "--out-dir", str(out)]  # fmt: skip
    assert embed_bench.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["num_sentences"] == 12 and results["config"]["prompt_tokens"] > 12
    ours, base = results["protoserve_sentences_per_s"], results["transformers_sentences_per_s"]
    assert len(ours["runs"]) == len(base["runs"]) == 1
    ratio = results["ratio_of_medians"]
    assert ratio == ours["median"] / base["median"]
    assert results["target"] == {"ratio_of_medians_at_least": 1.5, "met": ratio >= 1.5}
    assert results["max_abs_difference_first_vectors"] < 1e-4  # the same embeddings
    assert results["peak_rss_mib"]["protoserve"]["service"] > 0
    printed = capsys.readouterr().out
    assert ("PASS" if results["target"]["met"] else "FAIL") in printed
