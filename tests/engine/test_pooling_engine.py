"""PoolingEngine on tiny random checkpoints: embeddings and classifier logits match
transformers run one sequence at a time (we run padded, length-grouped batches), for the
native BERT family and the transformers fallback (decoders as embedders and classifiers
included); Matryoshka dimensions, STEP pooling, validation and aborts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine import CacheConfig, EngineConfig, InvalidParameter, ModelConfig, SchedulerConfig
from engine.pooling import PoolerConfig, PoolingEngine, PoolingParams
from tests.pooling_models import add_sentence_transformers, build, hf_mean_embeddings, set_config

ATOL = 2e-5
# Lengths that make several padded batches under the small token budget below.
LENGTHS = (3, 17, 9, 30, 5, 12, 12, 2, 25)


def prompts(vocab: int, lengths=LENGTHS, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=generator).tolist() for n in lengths]


def make_engine(path, *, model_impl="auto", pooler=None, budget=64, max_model_len=32):
    config = EngineConfig(
        ModelConfig(str(path), model_impl=model_impl, max_model_len=max_model_len),
        CacheConfig(),
        SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=budget),
        device="cpu",
    )
    return PoolingEngine(config, pooler)


def run(engine: PoolingEngine, rows, params, min_steps: int = 2) -> list[torch.Tensor]:
    params = params if isinstance(params, list) else [params] * len(rows)
    for i, (ids, p) in enumerate(zip(rows, params, strict=True)):
        engine.add_request(f"r{i}", ids, p)
    outputs = {}
    steps = 0
    while engine.has_unfinished_requests():
        for output in engine.step():
            outputs[output.request_id] = output.data
        steps += 1
    assert steps >= min_steps  # the budget forces several (padded) batches
    return [outputs[f"r{i}"] for i in range(len(rows))]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-pooling")


@pytest.mark.parametrize("impl", ["native", "transformers"])
def test_bert_mean_embeddings_match_transformers(root, impl) -> None:
    tiny = build("bert", root / impl, sentence_transformers="MEAN")
    engine = make_engine(tiny.path, model_impl=impl)
    assert engine.info.pooling_type == "MEAN" and engine.info.normalize
    rows = prompts(tiny.hf.config.vocab_size)
    ours = torch.stack(run(engine, rows, PoolingParams()))
    torch.testing.assert_close(ours, hf_mean_embeddings(tiny.hf, rows), atol=ATOL, rtol=0)


def test_roberta_cls_and_token_embeddings(root) -> None:
    tiny = build("roberta", root)  # no sentence-transformers config: CLS for encoders
    engine = make_engine(tiny.path, budget=128, max_model_len=None)
    assert engine.info.pooling_type == "CLS" and engine.max_model_len == 126  # 128 - pad - 1
    rows = prompts(600, (4, 11, 7))
    embed = run(engine, rows, PoolingParams(use_activation=False), min_steps=1)
    tokens = run(engine, rows, PoolingParams("token_embed"), min_steps=1)
    with torch.no_grad():
        for ids, vector, matrix in zip(rows, embed, tokens, strict=True):
            hidden = tiny.hf(input_ids=torch.tensor([ids])).last_hidden_state[0]
            torch.testing.assert_close(vector, hidden[0], atol=ATOL, rtol=0)
            torch.testing.assert_close(matrix, F.normalize(hidden, dim=-1), atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "kind,impl",
    [
        ("bert_classifier", "native"),
        ("roberta_classifier", "native"),
        ("xlm_roberta_classifier", "native"),
        ("bert_classifier", "transformers"),
        ("llama_classifier", "auto"),  # a causal LM as classifier: transformers, last token
    ],
)
def test_classifier_logits_match_transformers(root, kind, impl) -> None:
    tiny = build(kind, root / impl, seed=3)
    engine = make_engine(tiny.path, model_impl=impl)
    num_labels = tiny.hf.config.num_labels
    assert engine.info.tasks == {"classify"} and engine.info.num_labels == num_labels
    rows = prompts(tiny.hf.config.vocab_size, seed=1)
    raw = run(engine, rows, PoolingParams("classify", use_activation=False))
    probs = run(engine, rows, PoolingParams("classify"))
    with torch.no_grad():
        for ids, logits, p in zip(rows, raw, probs, strict=True):
            expected = tiny.hf(input_ids=torch.tensor([ids])).logits[0]
            torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
            torch.testing.assert_close(p, expected.softmax(-1), atol=1e-5, rtol=0)


def test_bert_labels_are_read(root) -> None:
    engine = make_engine(build("bert_classifier", root / "labels").path)
    assert engine.info.labels == ("negative", "neutral", "positive")


def test_cross_encoder_pairs_use_token_types(root) -> None:
    tiny = build("bert_cross_encoder", root, seed=5)
    engine = make_engine(tiny.path)
    assert engine.info.is_cross_encoder
    pairs = [([101, 2054, 102], [2003, 1037, 3231, 102]), ([101, 7592, 2088, 102], [2003, 102])]
    rows = [a + b for a, b in pairs] * 3
    types = [tuple([0] * len(a) + [1] * len(b)) for a, b in pairs] * 3
    params = [PoolingParams("classify", token_type_ids=t) for t in types]
    scores = run(engine, rows, params)
    with torch.no_grad():
        for ids, t, score in zip(rows, types, scores, strict=True):
            logit = tiny.hf(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([t])).logits
            torch.testing.assert_close(score, logit[0].sigmoid(), atol=1e-5, rtol=0)


def test_decoder_as_embedder_pools_the_last_token(root) -> None:
    tiny = build("llama", root, seed=7)
    engine = make_engine(tiny.path)  # PoolingEngine = the pooling runner for a causal LM
    assert engine.info.is_causal and engine.info.pooling_type == "LAST"
    rows = prompts(512, seed=2)
    ours = run(engine, rows, PoolingParams())
    with torch.no_grad():
        for ids, vector in zip(rows, ours, strict=True):
            hidden = tiny.hf.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
            torch.testing.assert_close(vector, F.normalize(hidden, dim=-1), atol=ATOL, rtol=0)


def test_matryoshka_dimensions(root) -> None:
    tiny = build("bert", root / "matryoshka", sentence_transformers="MEAN")
    rows = prompts(30522, (5, 20, 30))
    plain = make_engine(tiny.path)
    with pytest.raises(InvalidParameter, match="Matryoshka"):
        plain.add_request("x", rows[0], PoolingParams(dimensions=8))
    set_config(tiny.path, is_matryoshka=True)
    engine = make_engine(tiny.path)
    full = torch.stack(run(engine, rows, PoolingParams(use_activation=False)))
    cut = torch.stack(run(engine, rows, PoolingParams(dimensions=8)))
    torch.testing.assert_close(cut, F.normalize(full[:, :8], dim=-1), atol=1e-6, rtol=0)
    with pytest.raises(InvalidParameter, match=r"\[1, 32\]"):
        engine.add_request("y", rows[0], PoolingParams(dimensions=33))
    set_config(tiny.path, is_matryoshka=False, matryoshka_dimensions=[16, 32])
    listed = make_engine(tiny.path)
    with pytest.raises(InvalidParameter, match=r"\[16, 32\]"):
        listed.add_request("z", rows[0], PoolingParams(dimensions=8))


def test_step_pooling_keeps_the_tagged_positions(root) -> None:
    tiny = build("bert", root / "step")
    add_sentence_transformers(tiny.path, "CLS", normalize=False)
    pooler = PoolerConfig(pooling_type="STEP", step_tag_id=42, returned_token_ids=(0, 5))
    engine = make_engine(tiny.path, pooler=pooler)
    ids = [101, 7, 42, 9, 42, 102]
    [states] = run(engine, [ids, [101, 5, 102]], PoolingParams(use_activation=False), 1)[:1]
    with torch.no_grad():
        hidden = tiny.hf(input_ids=torch.tensor([ids])).last_hidden_state[0]
    torch.testing.assert_close(states, hidden[[2, 4]][:, [0, 5]], atol=ATOL, rtol=0)


def test_validation_and_abort(root) -> None:
    tiny = build("bert", root / "checks")
    engine = make_engine(tiny.path, max_model_len=16, budget=64)
    with pytest.raises(InvalidParameter, match="maximum context length is 16"):
        engine.add_request("long", list(range(3, 20)), PoolingParams())
    with pytest.raises(InvalidParameter, match="Task 'classify' is not supported"):
        engine.add_request("task", [5, 6], PoolingParams("classify"))
    with pytest.raises(InvalidParameter, match="does not support \\['dimensions'\\]"):
        engine.add_request("dims", [5, 6], PoolingParams("classify", dimensions=4))
    engine.add_request("a", [5, 6, 7], PoolingParams())
    aborted = engine.abort_request("a")
    assert aborted is not None and aborted.data is None and aborted.finished
    assert not engine.has_unfinished_requests() and engine.step() == []
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        make_engine(tiny.path, budget=32, max_model_len=64)
