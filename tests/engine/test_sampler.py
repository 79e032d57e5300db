"""Sampler on crafted logits: greedy equivalences, top-k/top-p sets, the sampled
distribution (chi-square), seeded determinism, min_tokens masking."""

from __future__ import annotations

import torch

from engine.sampler import Sampler, apply_top_k_top_p
from engine.sampling_params import SamplingParams
from engine.scheduler import ScheduledSequence

EOS = 0
# Chi-square critical value for 5 degrees of freedom at p = 0.001: a correct sampler fails
# with probability 0.1%; with fixed seeds the outcome is deterministic.
CHI2_CRIT_DF5_P001 = 20.515


def _seq(rid: str, params: SamplingParams, num_output: int = 0) -> ScheduledSequence:
    return ScheduledSequence(rid, [1], 0, [0], True, params, num_output)


def _sampler(vocab: int, seed: int = 0) -> Sampler:
    return Sampler(vocab, (EOS,), torch.device("cpu"), seed=seed)


def _sample(sampler: Sampler, logits: torch.Tensor, params: list[SamplingParams]) -> list[int]:
    seqs = [_seq(f"r{i}", p) for i, p in enumerate(params)]
    for s in seqs:
        sampler.add_request(s.request_id, s.sampling_params)
    return sampler.sample(logits.clone(), seqs)


def test_temperature_zero_and_top_k_one_are_argmax() -> None:
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(1))
    greedy = [SamplingParams(temperature=0.0), SamplingParams(temperature=1.7, top_k=1)] * 4
    sampler = _sampler(50)
    state = sampler._generator.get_state()
    assert _sample(sampler, logits, greedy) == logits.argmax(-1).tolist()
    assert torch.equal(sampler._generator.get_state(), state)  # fast path: no RNG drawn
    mixed = [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=1.0, top_k=1),
        SamplingParams(temperature=1.0),
        SamplingParams(temperature=2.0, seed=3),
    ] * 2
    out = _sample(_sampler(50), logits, mixed)
    for i in (0, 1, 4, 5):
        assert out[i] == int(logits[i].argmax())


def test_top_k_and_top_p_masks_are_exact() -> None:
    probs = torch.tensor([[0.05, 0.40, 0.10, 0.30, 0.15], [0.05, 0.40, 0.10, 0.30, 0.15]])
    logits = probs.log()
    masked = apply_top_k_top_p(logits, torch.tensor([2, 5]), torch.tensor([1.0, 0.8]))
    kept = [set(torch.nonzero(row.isfinite()).flatten().tolist()) for row in masked]
    assert kept[0] == {1, 3}  # top-2
    assert kept[1] == {1, 3, 4}  # 0.40 + 0.30 < 0.8 <= 0.40 + 0.30 + 0.15
    assert torch.equal(masked[0][[1, 3]], logits[0][[1, 3]])


def test_samples_never_leave_the_allowed_set() -> None:
    n = 3000
    logits = torch.tensor([0.0, 2.0, 1.0, 1.5, 0.5, -1.0]).repeat(n, 1)
    top_k = _sample(_sampler(6), logits, [SamplingParams(temperature=2.0, top_k=3)] * n)
    assert set(top_k) == {1, 2, 3}
    top_p = _sample(_sampler(6), logits, [SamplingParams(temperature=1.0, top_p=0.6)] * n)
    assert set(top_p) == {1, 3}  # probs 0.42 and 0.25: {1} alone < 0.6 <= {1, 3}


def _chi_square(samples: list[int], expected_probs: torch.Tensor) -> float:
    observed = torch.bincount(torch.tensor(samples), minlength=len(expected_probs)).double()
    expected = expected_probs.double() * len(samples)
    return float(((observed - expected) ** 2 / expected).sum())


def test_sampled_frequencies_follow_softmax_over_temperature() -> None:
    logits = torch.tensor([1.0, 0.5, 0.0, -0.5, 0.8, -1.0])
    temperature = 0.7
    expected = (logits / temperature).softmax(-1)
    n = 20000
    unseeded = _sample(
        _sampler(6, seed=123), logits.repeat(n, 1), [SamplingParams(temperature=temperature)] * n
    )
    assert _chi_square(unseeded, expected) < CHI2_CRIT_DF5_P001
    m = 4000  # seeded rows: one generator each
    seeded = _sample(
        _sampler(6),
        logits.repeat(m, 1),
        [SamplingParams(temperature=temperature, seed=s) for s in range(m)],
    )
    assert _chi_square(seeded, expected) < CHI2_CRIT_DF5_P001


def test_seeded_request_ignores_the_rest_of_the_batch() -> None:
    g = torch.Generator().manual_seed(5)
    mine = SamplingParams(temperature=1.0, seed=42)
    alone, batched = _sampler(64, seed=1), _sampler(64, seed=2)
    alone.add_request("me", mine)
    batched.add_request("me", mine)
    others = [
        SamplingParams(temperature=0.9, seed=s if s % 2 else None, top_p=0.9) for s in range(15)
    ]
    for i, p in enumerate(others):
        batched.add_request(f"o{i}", p)
    for _ in range(6):
        row = torch.randn(1, 64, generator=g)
        noise = torch.randn(15, 64, generator=g)
        a = alone.sample(row.clone(), [_seq("me", mine)])
        b = batched.sample(
            torch.cat([noise[:7], row, noise[7:]]),
            [_seq(f"o{i}", p) for i, p in enumerate(others[:7])]
            + [_seq("me", mine)]
            + [_seq(f"o{i + 7}", p) for i, p in enumerate(others[7:])],
        )
        assert a[0] == b[7]


def test_min_tokens_masks_eos_and_stop_ids() -> None:
    logits = torch.tensor([[5.0, 4.0, 3.0, 0.0]])
    sampler = _sampler(4)
    params = SamplingParams(temperature=0.0, min_tokens=2, stop_token_ids=(1,))
    assert sampler.sample(logits.clone(), [_seq("a", params, num_output=1)]) == [2]
    assert sampler.sample(logits.clone(), [_seq("a", params, num_output=2)]) == [EOS]
    ignore = SamplingParams(temperature=0.0, min_tokens=2, ignore_eos=True)
    assert sampler.sample(logits.clone(), [_seq("b", ignore, num_output=0)]) == [EOS]
