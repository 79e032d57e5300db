"""The sampler's features against straightforward references on the same logits:
sampled distributions (chi-square, fixed seeds, p = 0.001) for temperature, top-k, top-p
and min-p; greedy equivalences; penalties, logit bias, allowed tokens and bad words
against per-row Python loops; a seeded request in a batch of 16 others, in the engine."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import make_engine, prompts, run_all, tokens

from engine import token_sampling
from engine.sampler import Sampler
from engine.sampling_params import SamplingParams
from engine.scheduler import ScheduledSequence

EOS = 0
# Chi-square critical values at p = 0.001 by degrees of freedom (scipy.stats.chi2.ppf):
# a correct sampler fails one check with probability 0.1%; the seeds are fixed, so the
# outcome is deterministic.
CHI2_P001 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322}
LOGITS = torch.tensor([2.0, 1.4, 1.1, 0.9, 0.3, 0.0, -0.4, -1.5])


def _seq(rid: str, params: SamplingParams, output=(), prompt=(1,)) -> ScheduledSequence:
    return ScheduledSequence(
        rid, [1], 0, [0], True, params, len(output), prompt_token_ids=list(prompt),
        output_token_ids=list(output),
    )  # fmt: skip


def _draw(params: SamplingParams, n: int, seed: int = 7) -> torch.Tensor:
    sampler = Sampler(len(LOGITS), (EOS,), torch.device("cpu"), seed=seed)
    seqs = [_seq(f"r{i}", params) for i in range(n)]
    return torch.tensor(sampler.sample(LOGITS.repeat(n, 1), seqs))


def _reference(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, logits=LOGITS) -> torch.Tensor:
    """Temperature, min-p, top-k, then top-p, each by its definition on sorted probs."""
    probs = (logits / temperature).softmax(-1)
    keep = probs >= min_p * probs.max()
    order = probs.argsort(descending=True).tolist()
    if top_k > 0:
        keep[order[top_k:]] = False
    kept = [i for i in order if keep[i]]
    total, mass, nucleus = sum(probs[i] for i in kept), 0.0, []
    for i in kept:  # the smallest top set whose (renormalised) mass reaches top_p
        nucleus.append(i)
        mass += probs[i] / total
        if mass >= top_p:
            break
    out = torch.zeros_like(probs)
    out[nucleus] = probs[nucleus]
    return out / out.sum()


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 0.7},
        {"temperature": 1.6},
        {"temperature": 1.0, "top_k": 3},
        {"temperature": 1.3, "top_p": 0.8},
        {"temperature": 0.9, "min_p": 0.3},
        {"temperature": 1.2, "top_k": 5, "top_p": 0.9, "min_p": 0.1},
    ],
)
def test_sampled_frequencies_match_the_reference_distribution(options) -> None:
    n = 20000
    samples = _draw(SamplingParams(**options), n)
    expected = _reference(**options)
    support = expected > 0
    observed = torch.bincount(samples, minlength=len(LOGITS)).double()
    assert observed[~support].sum() == 0, "sampled outside the allowed set"
    exp = expected[support].double() * n
    chi_square = float(((observed[support] - exp) ** 2 / exp).sum())
    assert chi_square < CHI2_P001[int(support.sum()) - 1], (chi_square, options)


def test_flat_rows_take_the_dense_path_with_the_same_distribution(monkeypatch) -> None:
    """A nucleus or min-p set wider than the candidate window: sampled over the whole
    vocabulary, from the same distribution. Five likely tokens, 295 flat ones (the latter
    pooled into one chi-square category)."""
    logits = torch.cat([torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0]), torch.linspace(0.0, -0.5, 295)])
    dense_rows = []
    original = token_sampling._dense
    monkeypatch.setattr(
        token_sampling,
        "_dense",
        lambda s, rows, *a: dense_rows.append(len(rows)) or original(s, rows, *a),
    )
    n = 20000
    for options in ({"top_p": 0.9}, {"min_p": 0.04}, {"top_p": 0.8, "min_p": 0.03}):
        sampler = Sampler(len(logits), (EOS,), torch.device("cpu"), seed=5)
        params = SamplingParams(temperature=1.0, **options)
        samples = torch.tensor(
            sampler.sample(logits.repeat(n, 1), [_seq(f"r{i}", params) for i in range(n)])
        )
        expected = _reference(logits=logits, **options)
        observed = torch.bincount(samples, minlength=len(logits)).double()
        assert observed[expected == 0].sum() == 0, options
        pooled_obs = torch.cat([observed[:5], observed[5:].sum(0, keepdim=True)])
        pooled_exp = torch.cat([expected[:5], expected[5:].sum(0, keepdim=True)]).double() * n
        chi_square = float(((pooled_obs - pooled_exp) ** 2 / pooled_exp).sum())
        assert chi_square < CHI2_P001[5], (chi_square, options)
        assert int((expected > 0).sum()) > 64  # wider than the window
    assert dense_rows == [n, n, n]


def test_top_k_one_and_temperature_zero_are_greedy() -> None:
    logits = torch.randn(64, 300, generator=torch.Generator().manual_seed(3))
    sampler = Sampler(300, (EOS,), torch.device("cpu"))
    for params in (SamplingParams(temperature=0.0), SamplingParams(temperature=1.5, top_k=1)):
        seqs = [_seq(f"r{i}", params) for i in range(64)]
        assert sampler.sample(logits.clone(), seqs) == logits.argmax(-1).tolist()


def _penalised_reference(logits, prompt, output, rep, freq, pres):
    out = logits.clone()
    for token in set(prompt) | set(output):
        out[token] = out[token] / rep if out[token] > 0 else out[token] * rep
    for token in set(output):
        out[token] -= freq * output.count(token) + pres
    return out


def test_penalties_match_a_reference_implementation() -> None:
    g = torch.Generator().manual_seed(11)
    vocab, rows = 50, 12
    logits = torch.randn(rows, vocab, generator=g) * 3
    sampler = Sampler(vocab, (EOS,), torch.device("cpu"))
    seqs, expected = [], []
    for row in range(rows):
        prompt = torch.randint(0, vocab, (8,), generator=g).tolist()
        output = torch.randint(0, vocab, (row * 2,), generator=g).tolist()
        rep, freq, pres = 1.0 + 0.1 * row, 0.15 * (row % 4), -0.3 + 0.1 * row
        params = SamplingParams(
            repetition_penalty=rep, frequency_penalty=freq, presence_penalty=pres
        )
        if row == 5:  # a row without penalties is left alone
            params, rep, freq, pres = SamplingParams(), 1.0, 0.0, 0.0
        seqs.append(_seq(f"r{row}", params, output, prompt))
        expected.append(_penalised_reference(logits[row], prompt, output, rep, freq, pres))
    processed = logits.clone()
    sampler.process_logits(processed, seqs)
    torch.testing.assert_close(processed, torch.stack(expected))
    # The counts follow the outputs incrementally: two more tokens, one more step.
    grown = [_seq(s.request_id, s.sampling_params, [*s.output_token_ids, 3, 3],
                  s.prompt_token_ids) for s in seqs]  # fmt: skip
    processed = logits.clone()
    sampler.process_logits(processed, grown)
    for row, s in enumerate(grown):
        p = s.sampling_params
        ref = _penalised_reference(
            logits[row], list(s.prompt_token_ids), list(s.output_token_ids),
            p.repetition_penalty, p.frequency_penalty, p.presence_penalty,
        )  # fmt: skip
        torch.testing.assert_close(processed[row], ref)


def test_bias_allowed_tokens_bad_words_and_min_tokens() -> None:
    vocab = 20
    logits = torch.zeros(4, vocab)
    sampler = Sampler(vocab, (EOS,), torch.device("cpu"))
    cases = [
        SamplingParams(logit_bias=((3, 2.5), (4, -500.0))),  # clamped to -100
        SamplingParams(allowed_token_ids=(5, 6)),
        SamplingParams(bad_words_token_ids=((7,), (8, 9))),
        SamplingParams(min_tokens=3, stop_token_ids=(11,)),
    ]
    seqs = [_seq(f"r{i}", p, output=[1, 8]) for i, p in enumerate(cases)]
    for s in seqs:
        sampler.add_request(s.request_id, s.sampling_params)
    sampler.process_logits(logits, seqs)
    assert logits[0, 3] == 2.5 and logits[0, 4] == -100.0 and logits[0, 5] == 0.0
    assert torch.isfinite(logits[1]).nonzero().flatten().tolist() == [5, 6]
    banned = (~torch.isfinite(logits[2])).nonzero().flatten().tolist()
    assert banned == [7, 9]  # 9 completes "8 9" after an output ending in 8
    assert (~torch.isfinite(logits[3])).nonzero().flatten().tolist() == [EOS, 11]


def test_seeded_request_alone_and_in_a_batch_of_16(llama) -> None:
    seeded = SamplingParams(temperature=1.0, top_p=0.95, seed=1234, max_tokens=12)
    prompt = prompts(1, seed=9)[0]
    alone = make_engine(llama)
    alone.add_request("me", prompt, seeded)
    expected = tokens(run_all(alone)["me"])
    crowd = make_engine(llama, seed=99)
    others = [
        SamplingParams(temperature=0.9, max_tokens=9),
        SamplingParams(temperature=1.3, top_k=7, seed=5, max_tokens=14),
        SamplingParams(temperature=0.0, max_tokens=6, logprobs=3),
        SamplingParams(temperature=1.0, presence_penalty=1.0, repetition_penalty=1.2),
        SamplingParams(temperature=0.7, min_p=0.1, logit_bias=((7, 3.0),), max_tokens=20),
        SamplingParams(temperature=1.0, allowed_token_ids=tuple(range(50, 90)), max_tokens=8),
        SamplingParams(use_beam_search=True, beam_width=2, max_tokens=5),
    ]
    for i, p in enumerate(prompts(16, seed=10)):
        crowd.add_request(f"o{i}", p, others[i % len(others)])
        if i == 7:
            crowd.add_request("me", prompt, seeded)
    assert tokens(run_all(crowd)["me"]) == expected


def test_a_row_with_nothing_left_ends_with_eos() -> None:
    sampler = Sampler(20, (EOS,), torch.device("cpu"))
    params = SamplingParams(
        temperature=1.0, allowed_token_ids=(4, 5), bad_words_token_ids=((4,), (5,))
    )
    sampler.add_request("r", params)
    assert sampler.sample(torch.zeros(1, 20), [_seq("r", params)]) == [EOS]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_every_feature_runs_on_cuda_as_on_cpu() -> None:
    logits = torch.randn(6, 300, generator=torch.Generator().manual_seed(2)) * 3
    params = [
        SamplingParams(temperature=0.0, repetition_penalty=1.3, logprobs=3, logprob_token_ids=(1,)),
        SamplingParams(temperature=0.0, presence_penalty=1.0, logit_bias=((9, 50.0),)),
        SamplingParams(temperature=0.0, allowed_token_ids=(5, 6, 7), min_tokens=1),
        SamplingParams(temperature=0.9, top_p=0.8, top_k=20, min_p=0.05, seed=1),
        SamplingParams(temperature=1.0, seed=2),
        SamplingParams(use_beam_search=True, beam_width=2),
    ]
    results = []
    for device in ("cpu", "cuda"):
        sampler = Sampler(300, (EOS,), torch.device(device))
        seqs = [_seq(f"r{i}", p, output=[3, 4], prompt=[5, 6]) for i, p in enumerate(params)]
        for s in seqs:
            sampler.add_request(s.request_id, s.sampling_params)
        results.append(sampler.run(logits.clone().to(device), seqs))
    cpu, cuda = results
    assert cpu.token_ids[:3] == cuda.token_ids[:3] and cpu.token_ids[5] is None
    assert cuda.token_ids[3] is not None and cuda.logprobs[0].chosen == cpu.logprobs[0].chosen
    assert cpu.beam_candidates["r5"].token_ids == cuda.beam_candidates["r5"].token_ids
