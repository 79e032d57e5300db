"""BERT-family encoders — BERT, MiniLM, RoBERTa, XLM-RoBERTa — with bidirectional
attention on padded batches (engine.pooling.batch), and their sequence-classification
head (cross-encoders, classifiers): CLS -> dense -> tanh -> linear, which is BERT's
pooler + classifier and RoBERTa's classification head alike.

Built as `cls(config: dict, dtype)` on the meta device; `load_weights` fills it from the
checkpoint's names (`bert.` / `roberta.` prefixes, q/k/v fused into one matmul)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import UnsupportedModel
from engine.pooling.batch import EncoderOutput, PaddedBatch

_ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}
_ROBERTA_TYPES = ("roberta", "xlm-roberta", "camembert")
_PREFIXES = ("bert.", "roberta.")
# checkpoint name (prefix removed) -> (our name, q/k/v shard or None)
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"embeddings\.LayerNorm\.", "embeddings.norm."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attn_out."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.attn_norm."),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.up."),
    (r"encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.down."),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.out_norm."),
    (r"pooler\.dense\.", "head_dense."),  # BERT's pooler feeds its classifier
    (r"classifier\.dense\.", "head_dense."),  # RoBERTa's classification head
    (r"classifier\.out_proj\.", "head_out."),
    (r"classifier\.", "head_out."),
)
_QKV = re.compile(r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)")


def check_supported(config: dict[str, Any]) -> None:
    """UnsupportedModel for options this implementation lacks (transformers may serve)."""
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise UnsupportedModel(f"position_embedding_type {config['position_embedding_type']!r}")
    if config.get("hidden_act", "gelu") not in _ACTIVATIONS:
        raise UnsupportedModel(f"hidden_act {config['hidden_act']!r}")
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise UnsupportedModel("decoder (causal / cross-attention) BERT")


class BertEmbeddings(nn.Module):
    def __init__(self, config: dict[str, Any], dtype: torch.dtype) -> None:
        super().__init__()
        hidden = config["hidden_size"]
        self.word_embeddings = nn.Embedding(config["vocab_size"], hidden, dtype=dtype)
        self.position_embeddings = nn.Embedding(
            config["max_position_embeddings"], hidden, dtype=dtype
        )
        types = int(config.get("type_vocab_size") or 0)
        self.token_type_embeddings = nn.Embedding(types, hidden, dtype=dtype) if types else None
        self.norm = nn.LayerNorm(hidden, eps=config.get("layer_norm_eps", 1e-12), dtype=dtype)
        # RoBERTa counts positions from padding_idx + 1.
        roberta = config.get("model_type") in _ROBERTA_TYPES
        self.position_offset = int(config.get("pad_token_id") or 0) + 1 if roberta else 0

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(
            positions + self.position_offset
        )
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                x = x + self.token_type_embeddings.weight[0]
            else:
                x = x + self.token_type_embeddings(token_type_ids)
        return self.norm(x)


class BertLayer(nn.Module):
    """Post-norm: attention + residual -> norm -> MLP + residual -> norm."""

    def __init__(self, config: dict[str, Any], dtype: torch.dtype) -> None:
        super().__init__()
        hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
        self.num_heads = config["num_attention_heads"]
        self.qkv = nn.Linear(hidden, 3 * hidden, dtype=dtype)
        self.attn_out = nn.Linear(hidden, hidden, dtype=dtype)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps, dtype=dtype)
        self.up = nn.Linear(hidden, config["intermediate_size"], dtype=dtype)
        self.down = nn.Linear(config["intermediate_size"], hidden, dtype=dtype)
        self.out_norm = nn.LayerNorm(hidden, eps=eps, dtype=dtype)
        self.act = _ACTIVATIONS[config.get("hidden_act", "gelu")]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = self.attn_norm(x + self.attn_out(attn.transpose(1, 2).reshape(batch, length, hidden)))
        return self.out_norm(x + self.down(self.act(self.up(x))))


class BertEncoder(nn.Module):
    """BertModel / RobertaModel / XLMRobertaModel, and their *ForSequenceClassification."""

    is_causal = False

    def __init__(self, config: dict[str, Any], dtype: torch.dtype) -> None:
        super().__init__()
        check_supported(config)
        architecture = (config.get("architectures") or [""])[0]
        hidden = config["hidden_size"]
        self.hidden_size = hidden
        self.vocab_size = config["vocab_size"]
        self.pad_token_id = int(config.get("pad_token_id") or 0)
        self.embeddings = BertEmbeddings(config, dtype)
        self.layers = nn.ModuleList(
            BertLayer(config, dtype) for _ in range(config["num_hidden_layers"])
        )
        self.max_positions = config["max_position_embeddings"] - self.embeddings.position_offset
        self.num_labels = 0
        if architecture.endswith("ForSequenceClassification"):
            self.num_labels = len(config.get("id2label") or {}) or config.get("num_labels", 2)
            self.head_dense = nn.Linear(hidden, hidden, dtype=dtype)
            self.head_out = nn.Linear(hidden, self.num_labels, dtype=dtype)

    def forward(self, batch: PaddedBatch) -> EncoderOutput:
        x = self.embeddings(batch.input_ids, batch.token_type_ids)
        mask = batch.attention_mask[:, None, None, :] if batch.is_padded else None
        for layer in self.layers:
            x = layer(x, mask)
        logits = None
        if self.num_labels:
            logits = self.head_out(torch.tanh(self.head_dense(x[:, 0])))
        return EncoderOutput(x, logits)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        params = dict(self.named_parameters())
        rows: dict[str, int] = {}
        for hf_name, tensor in weights:
            target = _target(hf_name)
            if target is None or target[0] not in params:
                continue  # e.g. position_ids buffers, an unused pooler, an MLM head
            name, shard = target
            param = params[name]
            size = param.shape[0] // 3 if shard is not None else param.shape[0]
            start = (shard or 0) * size
            dest = param.data[start : start + size]
            if dest.shape != tensor.shape:
                raise ValueError(f"{hf_name}: shape {tuple(tensor.shape)} != {tuple(dest.shape)}")
            dest.copy_(tensor)
            rows[name] = rows.get(name, 0) + size
        return {n for n, p in params.items() if rows.get(n) == p.shape[0]}


def _target(hf_name: str) -> tuple[str, int | None] | None:
    name = hf_name
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
    if match := _QKV.fullmatch(name):
        layer, which, kind = match.groups()
        return f"layers.{layer}.qkv.{kind}", ("query", "key", "value").index(which)
    for pattern, replacement in _RENAMES:
        renamed, count = re.subn("^" + pattern, replacement, name)
        if count:
            return renamed, None
    return name, None
