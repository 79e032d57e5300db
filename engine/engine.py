"""LLMEngine: the synchronous core. One step = schedule -> execute -> sample -> update.

Not thread-safe: one thread drives it (AsyncEngine's step thread, or a test)."""

from __future__ import annotations

import os
import time

import structlog
import torch

from engine.attention import create_backend, default_backend
from engine.attention.base import AttentionBackend
from engine.beam_search import BeamSearch
from engine.config import EngineConfig
from engine.encoder_cache import EncoderInput
from engine.encoder_decoder_runner import EncoderDecoderRunner
from engine.errors import InvalidParameter, RequestAlreadyExists
from engine.kv_cache import KVCacheManager, allocate_kv_tensors, bytes_per_block
from engine.kv_memory import num_profile_blocks, profile_batches, profile_kv_cache_budget
from engine.loader import load_model, read_checkpoint
from engine.logprobs import PromptLogprobs
from engine.model_runner import ModelRunner
from engine.outputs import EngineStats, PositionLogprobs, RequestOutput
from engine.request import Request, RequestStatus
from engine.sampler import Sampler, SamplerOutput
from engine.sampling_params import SamplingParams
from engine.scheduler import Scheduler, SchedulerOutput
from engine.stopping import StopChecker, StopDecision
from engine.structured import TokenizerInfo

log = structlog.get_logger(__name__)


class LLMEngine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.device = config.torch_device
        checkpoint = read_checkpoint(config.model.model_dir)
        self.architecture = checkpoint.architecture
        self.dtype = config.model.torch_dtype(self.device, checkpoint.dtype_name)
        self._max_model_len = config.model.resolve_max_model_len(checkpoint.max_position_embeddings)
        self._eos_token_ids = checkpoint.eos_token_ids
        self._check_scheduler_config()
        _limit_cpu_threads(self.device)
        backend = create_backend(default_backend(self.device))
        self.model = load_model(
            checkpoint, backend, self.dtype, self.device, config.model.model_impl
        )
        # Encoder-decoder (Whisper): no prefix caching, the decoder's K/V depend on the audio.
        self.is_encoder_decoder = getattr(self.model, "is_encoder_decoder", False)
        num_blocks = self._num_kv_blocks(backend)
        self.kv_cache = KVCacheManager(
            num_blocks,
            config.cache.block_size,
            config.cache.enable_prefix_caching and not self.is_encoder_decoder,
        )
        self.runner = self._make_runner(backend, self._kv_tensors(num_blocks))
        self.scheduler = Scheduler(config.scheduler, self.kv_cache)
        self.sampler = Sampler(self.vocab_size, self._eos_token_ids, self.device, config.model.seed)
        self.stop_checker = StopChecker(self._eos_token_ids, self._max_model_len)
        self.prompt_logprobs = PromptLogprobs()
        self.beams = BeamSearch(
            self.scheduler, self._eos_token_ids, self._max_model_len, self._finish,
            self.sampler.add_request,
        )  # fmt: skip
        self._num_tokens_computed = 0  # tokens run through the model; only step() counts

    def set_tokenizer_info(self, info: TokenizerInfo) -> None:
        """Enable structured outputs: the grammar engine masks this vocabulary."""
        self.sampler.structured.set_tokenizer(info)

    # -- the step ------------------------------------------------------------------------
    def step(self) -> list[RequestOutput]:
        batch = self.scheduler.schedule()
        if batch.is_empty:
            return []
        logits = self.runner.execute(batch)
        self._num_tokens_computed += batch.num_batched_tokens
        sampling = batch.sampling_sequences
        sampled = self.sampler.run(logits[: len(sampling)], sampling)
        self._collect_prompt_logprobs(batch, logits[len(sampling) :])
        return self._update(batch, sampled)

    def _update(self, batch: SchedulerOutput, sampled: SamplerOutput) -> list[RequestOutput]:
        outputs = []
        entries = [
            e for e, t in zip(sampled.logprobs, sampled.token_ids, strict=True) if t is not None
        ]
        updated = self.scheduler.update_from_output(batch, sampled.token_ids)
        for request, entry in zip(updated, entries, strict=True):
            prompt_logprobs = self._first_prompt_logprobs(request)  # before a finish drops them
            decision = self.stop_checker.check(request) or self._grammar_stop(request)
            if decision is not None:
                self._finish(request.request_id, decision.status, decision.stop_token_id)
            logprobs = [entry] if entry is not None else None
            outputs.append(
                _output(request, request.output_token_ids[-1:], logprobs, prompt_logprobs)
            )
        return outputs + self.beams.update(sampled.beam_candidates)

    def _grammar_stop(self, request: Request) -> StopDecision | None:
        """A complete grammar allows nothing but EOS: the request is done."""
        if self.sampler.grammar_finished(request.request_id):
            return StopDecision(RequestStatus.FINISHED_STOPPED)
        return None

    def _collect_prompt_logprobs(self, batch: SchedulerOutput, logits: torch.Tensor) -> None:
        start = 0
        for seq, positions in batch.prompt_logits_spans:
            params = seq.sampling_params
            self.prompt_logprobs.add(
                seq.request_id, positions.start, logits[start : start + len(positions)],
                seq.prompt_token_ids, _num_top(params.prompt_logprobs, self.vocab_size),
                params.logprob_token_ids,
            )  # fmt: skip
            start += len(positions)

    def _first_prompt_logprobs(self, request: Request) -> list[PositionLogprobs | None] | None:
        """The prompt logprobs ride on a request's first output token."""
        if request.sampling_params.prompt_logprobs is None or request.num_output_tokens != 1:
            return None
        return self.prompt_logprobs.pop(request.request_id, request.num_prompt_tokens)

    # -- requests ------------------------------------------------------------------------
    def validate_request(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        params: SamplingParams,
        *,
        priority: int = 0,
        cache_salt: str | None = None,
        encoder_input: EncoderInput | None = None,
    ) -> None:
        """Raise InvalidParameter for a bad request. Reads only immutable engine facts, so
        any thread may call it."""
        if not isinstance(request_id, str) or not request_id:
            raise InvalidParameter("request_id", "request_id must be a non-empty string")
        if len(prompt_token_ids) == 0:
            raise InvalidParameter("prompt", "The prompt must not be empty.")
        if len(prompt_token_ids) >= self._max_model_len:
            raise InvalidParameter(
                "input_tokens",
                f"This model's maximum context length is {self._max_model_len} tokens; the "
                f"prompt has {len(prompt_token_ids)}, leaving no room to generate.",
            )
        bad = [t for t in prompt_token_ids if not 0 <= t < self.vocab_size]
        if bad:
            raise InvalidParameter(
                "prompt", f"token id {bad[0]} is outside the vocabulary [0, {self.vocab_size})"
            )
        params.validate(self.vocab_size)
        if params.structured_output is not None:
            self.sampler.structured.validate(params.structured_output)
        self._validate_scheduling(priority, cache_salt)
        self._validate_encoder_input(encoder_input, params)

    def _validate_encoder_input(
        self, encoder_input: EncoderInput | None, params: SamplingParams
    ) -> None:
        """Encoder-decoder models need an encoder input (audio) with every request; other
        models take none."""
        if not self.is_encoder_decoder:
            if encoder_input is not None:
                raise InvalidParameter("audio", f"{self.architecture} takes no audio input")
            return
        if encoder_input is None:
            raise InvalidParameter(
                "model", f"{self.architecture} needs an audio input with every request"
            )
        if getattr(params, "use_beam_search", False):
            raise InvalidParameter(
                "use_beam_search", "beam search is not supported for encoder-decoder models"
            )
        self.model.check_encoder_input(encoder_input.features)

    def _validate_scheduling(self, priority: int, cache_salt: str | None) -> None:
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise InvalidParameter("priority", f"priority must be an integer, got {priority!r}")
        policy = self.config.scheduler.policy
        if policy == "fcfs" and priority != 0:
            raise InvalidParameter(
                "priority",
                f"priority must be 0: this server schedules first-come-first-served "
                f"(scheduling policy {policy!r}), got {priority}",
            )
        if cache_salt is not None and (not isinstance(cache_salt, str) or not cache_salt):
            raise InvalidParameter("cache_salt", "cache_salt must be a non-empty string if set")

    def add_request(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        params: SamplingParams,
        *,
        priority: int = 0,
        cache_salt: str | None = None,
        encoder_input: EncoderInput | None = None,
    ) -> None:
        self.validate_request(
            request_id,
            prompt_token_ids,
            params,
            priority=priority,
            cache_salt=cache_salt,
            encoder_input=encoder_input,
        )
        if self.scheduler.get_request(request_id) is not None or request_id in self.beams:
            raise RequestAlreadyExists(request_id)
        if params.use_beam_search:  # the group's first sequence: the prompt
            request_id = self.beams.start(request_id, params, len(prompt_token_ids))
        request = Request(
            request_id,
            list(prompt_token_ids),
            params,
            time.monotonic(),
            priority=priority,
            cache_salt=cache_salt,
        )
        self.scheduler.add_request(request)
        self.sampler.add_request(request_id, params)
        if encoder_input is not None:
            self.runner.add_encoder_input(request_id, encoder_input)

    def abort_request(self, request_id: str) -> RequestOutput | None:
        """Finish a request now and free its blocks; its final (ABORT) output, or None if
        the id is unknown or already finished."""
        if request_id in self.beams:
            log.info("request aborted", request_id=request_id)
            return self.beams.abort(request_id)
        request = self.scheduler.get_request(request_id)
        if request is None:
            return None
        self._finish(request_id, RequestStatus.FINISHED_ABORTED)
        log.info("request aborted", request_id=request_id, output_tokens=request.num_output_tokens)
        return _output(request, [])

    def _finish(
        self, request_id: str, status: RequestStatus, stop_token_id: int | None = None
    ) -> None:
        request = self.scheduler.finish_request(request_id, status, stop_token_id)
        self.sampler.remove_request(request_id)
        self.runner.release(request_id)  # encoder-decoder: the request's encoder state
        self.prompt_logprobs.discard(request_id)
        log.debug(
            "request finished", request_id=request_id, status=status.name,
            prompt_tokens=request.num_prompt_tokens, output_tokens=request.num_output_tokens,
        )  # fmt: skip

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_unfinished_requests()

    def stats(self) -> EngineStats:
        return EngineStats(
            num_running=self.scheduler.num_running,
            num_waiting=self.scheduler.num_waiting,
            num_kv_blocks_total=self.kv_cache.num_blocks,
            num_kv_blocks_free=self.kv_cache.num_free_blocks,
            block_size=self.kv_cache.block_size,
            num_kv_blocks_cached=self.kv_cache.num_cached_free_blocks,
            prefix_cache_queries=self.scheduler.prefix_cache_queries,
            prefix_cache_hits=self.scheduler.prefix_cache_hits,
            num_tokens_computed=self._num_tokens_computed,
            num_preemptions=self.scheduler.num_preemptions,
        )

    def check_integrity(self) -> None:
        """Every KV block free or held exactly as often as tables hold it, hashes
        consistent, tables only for running requests (O(blocks): tests call it)."""
        self.scheduler.check_integrity()
        live = self.runner.live_request_ids()
        assert all(self.scheduler.get_request(r) for r in live), "encoder state outlived"
        self.check_no_leaks()

    def check_no_leaks(self) -> None:
        """With no request left, every block is free (O(1): run whenever idle)."""
        if not self.has_unfinished_requests():
            assert self.kv_cache.num_free_blocks == self.kv_cache.num_blocks, "leaked KV blocks"
            assert not self.runner.live_request_ids(), "leaked encoder state"

    # -- facts ---------------------------------------------------------------------------
    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def vocab_size(self) -> int:
        return self.model.vocab_size

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self._eos_token_ids

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    # -- set-up --------------------------------------------------------------------------
    def _check_scheduler_config(self) -> None:
        sched = self.config.scheduler
        if not sched.enable_chunked_prefill and sched.max_num_batched_tokens < self._max_model_len:
            raise ValueError(
                f"without chunked prefill, max_num_batched_tokens ({sched.max_num_batched_tokens}) "
                f"must be >= max_model_len ({self._max_model_len})"
            )

    def _make_runner(
        self, backend: AttentionBackend, kv: list, profiling: bool = False
    ) -> ModelRunner:
        block_size = self.config.cache.block_size
        if self.is_encoder_decoder:
            return EncoderDecoderRunner(
                self.model, backend, kv, block_size, self.device, self.dtype, profiling=profiling
            )
        return ModelRunner(self.model, backend, kv, block_size, self.device)

    def _kv_tensors(self, num_blocks: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        model = self.model
        return allocate_kv_tensors(
            model.num_layers, num_blocks, self.config.cache.block_size, model.num_kv_heads,
            model.head_dim, self.dtype, self.device,
        )  # fmt: skip

    def _num_kv_blocks(self, backend: AttentionBackend) -> int:
        model, cache = self.model, self.config.cache
        per_block = bytes_per_block(
            model.num_layers, cache.block_size, model.num_kv_heads, model.head_dim, self.dtype
        )
        wanted_tokens = self.config.scheduler.max_num_seqs * self._max_model_len
        budget = self._cuda_kv_budget(backend)
        if budget is not None:  # the profile's activations and blocks go back to the device
            torch.cuda.empty_cache()
        num_blocks = cache.resolve_num_blocks(per_block, wanted_tokens, budget)
        if num_blocks * cache.block_size < self._max_model_len:
            raise ValueError(
                f"the KV cache holds {num_blocks * cache.block_size} tokens, fewer than "
                f"max_model_len={self._max_model_len}: give it more memory or lower max_model_len"
            )
        log.info(
            "kv cache sized",
            model=self.architecture,
            num_blocks=num_blocks,
            block_size=cache.block_size,
            tokens=num_blocks * cache.block_size,
            mib=round(num_blocks * per_block / 2**20, 1),
            max_model_len=self._max_model_len,
            prefix_caching=cache.enable_prefix_caching and not self.is_encoder_decoder,
        )
        return num_blocks

    def _cuda_kv_budget(self, backend: AttentionBackend) -> int | None:
        """On CUDA without an explicit size: bytes left for KV blocks after a profiling
        pass at the step's token budget (see kv_memory). None otherwise."""
        cache, sched = self.config.cache, self.config.scheduler
        if self.device.type != "cuda" or cache.num_blocks or cache.kv_cache_memory:
            return None
        batches = profile_batches(
            sched.max_num_batched_tokens, sched.max_num_seqs, self._max_model_len, cache.block_size
        )
        kv = self._kv_tensors(num_profile_blocks(batches))
        runner = self._make_runner(backend, kv, profiling=True)
        sampler = Sampler(self.vocab_size, self._eos_token_ids, self.device)

        def forward() -> None:
            for batch in batches:
                sampler.sample(runner.execute(batch), batch.sampling_sequences)

        return profile_kv_cache_budget(forward, self.device, cache.gpu_memory_utilization)


def _num_top(count: int | None, vocab_size: int) -> int:
    return vocab_size if count == -1 else count or 0


def _output(
    request: Request,
    new_token_ids: list[int],
    logprobs: list[PositionLogprobs] | None = None,
    prompt_logprobs: list[PositionLogprobs | None] | None = None,
) -> RequestOutput:
    return RequestOutput(
        request_id=request.request_id,
        new_token_ids=new_token_ids,
        finished=request.is_finished,
        finish_reason=request.status.finish_reason,
        stop_token_id=request.stop_token_id,
        num_prompt_tokens=request.num_prompt_tokens,
        num_cached_tokens=max(request.num_cached_tokens, 0),
        num_output_tokens=request.num_output_tokens,
        logprobs=logprobs,
        prompt_logprobs=prompt_logprobs,
    )


def _limit_cpu_threads(device: torch.device) -> None:
    """One intra-op thread per usable core (torch may count cores this process can't use)."""
    if device.type != "cpu":
        return
    usable = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    if torch.get_num_threads() > usable:
        torch.set_num_threads(usable)
