"""The throughput targets: engine against transformers' best batched path and against
one-at-a-time generate, on the medians of output tok/s."""

from __future__ import annotations

from benchmarks.report import best_batched, throughput_targets


def _systems(**medians: float) -> dict:
    return {name: {"output_tok_s": {"median": value}} for name, value in medians.items()}


def test_best_batched_takes_static_batches_and_continuous_batching():
    systems = _systems(engine=90.0, hf_sequential=5.0, hf_static_b8=20.0,
                       hf_static_b32=40.0, hf_continuous_batching_sdpa=50.0)  # fmt: skip
    assert best_batched(systems) == "hf_continuous_batching_sdpa"
    targets = throughput_targets(systems)
    assert targets["engine_over_best_batched"]["value"] == 90.0 / 50.0
    assert targets["engine_over_best_batched"]["met"] is True
    assert targets["engine_over_best_batched"]["baseline"] == "hf_continuous_batching_sdpa"
    assert targets["engine_over_sequential"] == {"value": 18.0, "target": ">= 8.0", "met": True}


def test_targets_not_met_and_absent_baselines():
    targets = throughput_targets(_systems(engine=60.0, hf_static_b16=50.0))
    assert targets["engine_over_best_batched"]["met"] is False
    assert "engine_over_sequential" not in targets
    assert throughput_targets(_systems(engine=60.0)) == {}
