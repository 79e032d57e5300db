"""protoserve's inference engine: token ids and sampling parameters in, per-step outputs
out. Knows nothing of gRPC, protobuf or HTTP.

Modules, one concept each: config, sampling_params, request, outputs, errors, kv_cache
(blocks), scheduler (continuous batching policy), attention/ (paged attention backends),
models/ (native architectures + registry), loader (safetensors), model_runner (batch
tensors -> logits), sampler, stopping, engine (LLMEngine step loop), async_engine."""

from engine.async_engine import AsyncEngine
from engine.config import CacheConfig, EngineConfig, ModelConfig, SchedulerConfig
from engine.engine import LLMEngine
from engine.errors import (
    EngineDeadError,
    EngineError,
    InvalidParameter,
    RequestAlreadyExists,
    UnsupportedModel,
)
from engine.outputs import EngineStats, RequestOutput
from engine.request import FinishReason, RequestStatus
from engine.sampling_params import SamplingParams

__all__ = [
    "AsyncEngine",
    "CacheConfig",
    "EngineConfig",
    "EngineDeadError",
    "EngineError",
    "EngineStats",
    "FinishReason",
    "InvalidParameter",
    "LLMEngine",
    "ModelConfig",
    "RequestAlreadyExists",
    "RequestOutput",
    "RequestStatus",
    "SamplingParams",
    "SchedulerConfig",
    "UnsupportedModel",
]
