"""Turning a ModelSpec into a ServedModel: engine (weights, KV cache, step thread),
tokenizer and chat template."""

from __future__ import annotations

import json
import time
from pathlib import Path

import structlog

from engine import AsyncEngine, CacheConfig, EngineConfig, LLMEngine, ModelConfig, SchedulerConfig
from engine.pooling import PoolerConfig, PoolingEngine, resolve_runner
from service.chat import ChatRenderSettings
from service.chat_output import check_chat_options
from service.config import ChatOptions, EngineOptions, ModelSpec
from service.faults import install_engine_fault
from service.generation_config import load_defaults
from service.pooling import PoolingSupport
from service.pooling_inputs import PoolingTokenizer
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
    spec: ModelSpec,
    options: EngineOptions,
    trust_request_templates: bool,
    chat: ChatOptions | None = None,
) -> ServedModel:
    """Blocking (seconds): call from a worker thread."""
    started = time.monotonic()
    chat = chat or ChatOptions()
    check_chat_options(chat)
    path = Path(spec.path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{spec.path}: not a model directory (no config.json)")
    tokenizer = Tokenizer(spec.path)
    pooling = resolve_runner(_architecture(path), options.runner) == "pooling"
    config = engine_config(spec, options)
    core = (
        PoolingEngine(config, PoolerConfig.from_json(options.pooler_config))
        if pooling
        else LLMEngine(config)
    )
    if not pooling:  # structured outputs: the grammar engine masks this vocabulary
        core.set_tokenizer_info(tokenizer.grammar_info(core.vocab_size, core.eos_token_ids))
    if install_engine_fault(core):
        log.warning("test-only engine fault injection is armed", model=spec.names[0])
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
        chat=_render_settings(template, trust_request_templates, tokenizer, chat),
        chat_options=chat,
        max_model_len=core.max_model_len,
        vocab_size=min(core.vocab_size, tokenizer.vocab_size),
        eos_token_ids=frozenset(core.eos_token_ids),
        pooling=PoolingSupport(core.info, PoolingTokenizer(tokenizer)) if pooling else None,
        defaults=load_defaults(
            spec.path,
            options.generation_config,
            json.loads(options.override_generation_config or "{}"),
        ),
        max_logprobs=options.max_logprobs,
        speech=_speech_model(path, core.max_model_len),
        max_queued_requests=options.max_queued_requests,
    )
    log.info(
        "model ready",
        model=model.name,
        seconds=round(time.monotonic() - started, 2),
        max_model_len=model.max_model_len,
        chat_template=template is not None,
    )
    return model


def _render_settings(
    template: str | None, trust: bool, tokenizer: Tokenizer, chat: ChatOptions
) -> ChatRenderSettings:
    return ChatRenderSettings(
        template,
        trust,
        tokenizer.special_tokens(),
        content_format=chat.content_format,
        default_kwargs=json.loads(chat.default_chat_template_kwargs or "{}"),
    )


def _speech_model(path: Path, max_model_len: int):
    """The speech facts of a Whisper-family checkpoint; None for other models."""
    from service.audio.speech_model import SpeechModel, is_speech_architecture

    if not is_speech_architecture(_architecture(path)):
        return None
    return SpeechModel.load(path, max_model_len)


def _architecture(path: Path) -> str:
    config = json.loads((path / "config.json").read_text())
    return (config.get("architectures") or ["unknown"])[0]
