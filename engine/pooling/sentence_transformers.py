"""What a sentence-transformers checkpoint says about pooling: modules.json, the Pooling
module's config (pooling mode), the Normalize module, sentence_bert_config.json
(max_seq_length) and config_sentence_transformers.json (prompts per input type).

Read as plain JSON: sentence-transformers itself is not needed to serve such a model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_POOLING_MODULE = "sentence_transformers.models.Pooling"
_NORMALIZE_MODULE = "sentence_transformers.models.Normalize"
# 1_Pooling/config.json flag -> our pooling type (the first flag set wins, in this order).
_POOLING_MODES = (
    ("pooling_mode_cls_token", "CLS"),
    ("pooling_mode_mean_tokens", "MEAN"),
    ("pooling_mode_max_tokens", "MAX"),
    ("pooling_mode_mean_sqrt_len_tokens", "MEAN_SQRT_LEN"),
    ("pooling_mode_lasttoken", "LAST"),
)
# A pooling_mode string (newer configs) -> our pooling type.
_MODE_NAMES = {"cls": "CLS", "mean": "MEAN", "max": "MAX", "lasttoken": "LAST",
               "mean_sqrt_len_tokens": "MEAN_SQRT_LEN"}  # fmt: skip


@dataclass(frozen=True)
class SentenceTransformersConfig:
    pooling_type: str | None  # None: no Pooling module (or a mode we do not know)
    normalize: bool  # a Normalize module follows the pooling
    max_seq_length: int | None
    # Prompt prefixes by name ("query", "document", ...): input types the model knows.
    prompts: dict[str, str] = field(default_factory=dict)


def read_sentence_transformers(model_dir: str | Path) -> SentenceTransformersConfig | None:
    """None when the directory is not a sentence-transformers checkpoint."""
    path = Path(model_dir)
    modules = _json(path / "modules.json")
    if not isinstance(modules, list):
        return None
    types = {m.get("type"): m for m in modules if isinstance(m, dict)}
    pooling_type = None
    if _POOLING_MODULE in types:
        pooling_type = _pooling_type(_json(path / types[_POOLING_MODULE].get("path", "") /
                                           "config.json") or {})  # fmt: skip
    bert_config = _json(path / "sentence_bert_config.json") or {}
    st_config = _json(path / "config_sentence_transformers.json") or {}
    prompts = st_config.get("prompts") if isinstance(st_config.get("prompts"), dict) else {}
    return SentenceTransformersConfig(
        pooling_type=pooling_type,
        normalize=_NORMALIZE_MODULE in types,
        max_seq_length=bert_config.get("max_seq_length"),
        prompts={str(k): str(v) for k, v in prompts.items()},
    )


def _pooling_type(config: dict[str, Any]) -> str | None:
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        return _MODE_NAMES.get(mode)
    for flag, pooling_type in _POOLING_MODES:
        if config.get(flag):
            return pooling_type
    return None


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    return json.loads(path.read_text())
