"""Turning a ModelSpec into a ServedModel: engine (weights, KV cache, step thread),
tokenizer and chat template."""

from __future__ import annotations

import json
import time
from pathlib import Path

import structlog

from engine import AsyncEngine, CacheConfig, EngineConfig, LLMEngine, ModelConfig, SchedulerConfig
from service.chat import ChatRenderSettings
from service.config import EngineOptions, ModelSpec
from service.registry import ServedModel
from service.tokenizer import Tokenizer

log = structlog.get_logger(__name__)


def engine_config(spec: ModelSpec, options: EngineOptions) -> EngineConfig:
    return EngineConfig(
        model=ModelConfig(
            model_dir=spec.path,
            dtype=options.dtype,
            max_model_len=options.max_model_len,
            seed=options.seed,
            model_impl=options.model_impl,
        ),
        cache=CacheConfig(
            block_size=options.block_size,
            kv_cache_memory=options.kv_cache_memory,
            gpu_memory_utilization=options.gpu_memory_utilization,
            enable_prefix_caching=options.enable_prefix_caching,
        ),
        scheduler=SchedulerConfig(
            max_num_seqs=options.max_num_seqs,
            max_num_batched_tokens=options.max_num_batched_tokens,
            policy=options.scheduling_policy,
        ),
        device=options.device,
    )


def load_model(
    spec: ModelSpec, options: EngineOptions, trust_request_templates: bool
) -> ServedModel:
    """Blocking (seconds): call from a worker thread."""
    started = time.monotonic()
    path = Path(spec.path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{spec.path}: not a model directory (no config.json)")
    tokenizer = Tokenizer(spec.path)
    core = LLMEngine(engine_config(spec, options))
    engine = AsyncEngine(core)
    engine.start()
    template = spec.chat_template_source() or tokenizer.chat_template
    model = ServedModel(
        names=spec.names,
        root=str(path.resolve()),
        created=int(time.time()),
        architecture=_architecture(path),
        dtype=core.dtype_name,
        engine=engine,
        tokenizer=tokenizer,
        chat=ChatRenderSettings(template, trust_request_templates, tokenizer.special_tokens()),
        max_model_len=core.max_model_len,
        vocab_size=min(core.vocab_size, tokenizer.vocab_size),
        eos_token_ids=frozenset(core.eos_token_ids),
    )
    log.info(
        "model ready",
        model=model.name,
        seconds=round(time.monotonic() - started, 2),
        max_model_len=model.max_model_len,
        chat_template=template is not None,
    )
    return model


def _architecture(path: Path) -> str:
    config = json.loads((path / "config.json").read_text())
    return (config.get("architectures") or ["unknown"])[0]
