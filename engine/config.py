"""Engine configuration: one frozen dataclass per component, composed into EngineConfig.

Values that depend on the checkpoint (dtype "auto", max_model_len None, KV cache size) are
resolved by the functions and properties here, given what the loader read."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

GIB = 1 << 30
AUTO_KV_CACHE_LIMIT = 2 * GIB
SCHEDULING_POLICIES = ("fcfs", "priority")

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "half": torch.float16,
}
# config.json `torch_dtype` / `dtype` values -> what "auto" picks on CUDA.
_CHECKPOINT_DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}
# auto: native if the architecture is registered, else transformers | native | transformers
MODEL_IMPLS = ("auto", "native", "transformers")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices faster than float32 in every shape that
    matters: with AMX tiles, yes. AVX512-BF16 alone is not enough: on such a CPU (AMD EPYC,
    measured with torch 2.13) a bf16 GEMM was 1.7x faster but a bf16 GEMV (decode) 3x
    slower than float32."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def _require_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


@dataclass(frozen=True)
class ModelConfig:
    model_dir: str
    dtype: str = "auto"  # auto | float32 | float | bfloat16 | float16 | half
    max_model_len: int | None = None  # None: config.json max_position_embeddings
    seed: int = 0  # seeds the sampler's generator for requests without their own seed
    # Which implementation serves the checkpoint (one of MODEL_IMPLS): "auto" = the native
    # one if the architecture is registered in engine.models, else the transformers
    # fallback; "native" = native or UnsupportedModel; "transformers" = the fallback always.
    model_impl: str = "auto"

    def __post_init__(self) -> None:
        if self.dtype != "auto" and self.dtype not in _DTYPES:
            raise ValueError(
                f"dtype must be 'auto' or one of {sorted(_DTYPES)}, got {self.dtype!r}"
            )
        if self.model_impl not in MODEL_IMPLS:
            raise ValueError(f"model_impl must be one of {MODEL_IMPLS}, got {self.model_impl!r}")
        _require_positive("max_model_len", self.max_model_len)

    def torch_dtype(self, device: torch.device, checkpoint_dtype: str | None) -> torch.dtype:
        """The compute dtype: explicit, else on CUDA the checkpoint's own (float32 if it
        states none), else on CPU float32, or bfloat16 for a 16-bit checkpoint when the CPU
        has fast bf16 (float16 matmuls are slow on CPUs)."""
        if self.dtype != "auto":
            return _DTYPES[self.dtype]
        stated = _CHECKPOINT_DTYPES.get(checkpoint_dtype or "", torch.float32)
        if device.type != "cpu":
            return stated
        if stated != torch.float32 and cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32

    def resolve_max_model_len(self, max_position_embeddings: int) -> int:
        if self.max_model_len is None:
            return max_position_embeddings
        if self.max_model_len > max_position_embeddings:
            raise ValueError(
                f"max_model_len={self.max_model_len} is larger than the model's "
                f"max_position_embeddings={max_position_embeddings}"
            )
        return self.max_model_len


@dataclass(frozen=True)
class CacheConfig:
    block_size: int = 16  # tokens per KV block
    # Bytes for the KV cache; None = auto. CPU: min(2 GiB, enough for max_num_seqs *
    # max_model_len). CUDA: gpu_memory_utilization of the device, less what the weights
    # and a profiling forward pass use.
    kv_cache_memory: int | None = None
    num_blocks: int | None = None  # explicit override (tests); wins over kv_cache_memory
    # Fraction of the CUDA device's memory this engine may use (weights + activations + KV).
    gpu_memory_utilization: float = 0.92
    # Share computed full blocks between requests with the same prefix (hash-addressed).
    enable_prefix_caching: bool = True

    def __post_init__(self) -> None:
        _require_positive("block_size", self.block_size)
        _require_positive("kv_cache_memory", self.kv_cache_memory)
        _require_positive("num_blocks", self.num_blocks)
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )

    def resolve_num_blocks(
        self, bytes_per_block: int, max_tokens: int, device_budget: int | None = None
    ) -> int:
        """Blocks to allocate, given one block's size in bytes, the most tokens useful,
        and on CUDA the bytes left for the KV cache after profiling (see kv_memory)."""
        if self.num_blocks is not None:
            return self.num_blocks
        if self.kv_cache_memory is not None:
            return self.kv_cache_memory // bytes_per_block
        if device_budget is not None:
            return device_budget // bytes_per_block
        wanted = -(-max_tokens // self.block_size) * bytes_per_block
        return min(AUTO_KV_CACHE_LIMIT, wanted) // bytes_per_block


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int = 128  # most requests in one batch
    max_num_batched_tokens: int = 2048  # token budget of one step (prefill + decode)
    enable_chunked_prefill: bool = True  # split long prompts across steps
    # "fcfs": arrival order. "priority": by request priority (lower first), then arrival;
    # a waiting request may preempt running ones of lower priority.
    policy: str = "fcfs"

    def __post_init__(self) -> None:
        _require_positive("max_num_seqs", self.max_num_seqs)
        _require_positive("max_num_batched_tokens", self.max_num_batched_tokens)
        if self.policy not in SCHEDULING_POLICIES:
            raise ValueError(f"policy must be one of {SCHEDULING_POLICIES}, got {self.policy!r}")


@dataclass(frozen=True)
class EngineConfig:
    model: ModelConfig
    cache: CacheConfig = field(default_factory=CacheConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        if self.device != "auto" and torch.device(self.device).type not in ("cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)
