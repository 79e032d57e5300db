"""Pooling models in the engine: embeddings, classification, token states.

Modules: params (PoolingParams), batch (padded batch + model output), scheduler
(length-grouped dynamic batching), pooler (CLS / MEAN / LAST / ALL / STEP ... and
activations), runner (one step's forward + pooling), loader (native BERT family or
transformers), model_info (runner choice, pooling facts), sentence_transformers
(modules.json & co.), engine (PoolingEngine, LLMEngine's protocol)."""

from engine.pooling.engine import PoolingEngine
from engine.pooling.model_info import (
    POOLING_TYPES,
    RUNNERS,
    PoolerConfig,
    PoolingModelInfo,
    resolve_runner,
)
from engine.pooling.outputs import PoolingOutput
from engine.pooling.params import (
    CLASSIFY,
    EMBED,
    POOLING_TASKS,
    TOKEN_CLASSIFY,
    TOKEN_EMBED,
    PoolingParams,
)

__all__ = [
    "CLASSIFY",
    "EMBED",
    "POOLING_TASKS",
    "POOLING_TYPES",
    "RUNNERS",
    "TOKEN_CLASSIFY",
    "TOKEN_EMBED",
    "PoolerConfig",
    "PoolingEngine",
    "PoolingModelInfo",
    "PoolingOutput",
    "PoolingParams",
    "resolve_runner",
]
