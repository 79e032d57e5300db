"""PoolingEngine: the synchronous core for pooling models, with the same protocol as
LLMEngine (validate_request / add_request / abort_request / step / has_unfinished_requests
/ stats / check_no_leaks), so AsyncEngine drives either in its step thread.

Why not LLMEngine's scheduler and paged KV cache: a bidirectional encoder attends over
the whole sequence at once, so a pooled request is computed in one pass (no chunking, no
decode) and nothing survives it (no KV blocks to allocate, share or free). A step is
one dense, padded batch of similar-length requests (see scheduler), which is what the
attention kernels run fastest and what makes padding waste small."""

from __future__ import annotations

import structlog

from engine.config import EngineConfig
from engine.engine import _limit_cpu_threads
from engine.errors import InvalidParameter, RequestAlreadyExists
from engine.loader import read_checkpoint
from engine.outputs import EngineStats
from engine.pooling.loader import load_pooling_model
from engine.pooling.model_info import (
    PoolerConfig,
    PoolingModelInfo,
    is_classifier,
    pooling_model_info,
)
from engine.pooling.outputs import PoolingOutput
from engine.pooling.params import PoolingParams
from engine.pooling.runner import PoolingRunner
from engine.pooling.scheduler import PoolingScheduler
from engine.pooling.sentence_transformers import read_sentence_transformers
from engine.request import FinishReason

log = structlog.get_logger(__name__)


class PoolingEngine:
    def __init__(self, config: EngineConfig, pooler: PoolerConfig | None = None) -> None:
        self.config = config
        self.device = config.torch_device
        checkpoint = read_checkpoint(config.model.model_dir)
        self.architecture = checkpoint.architecture
        self.dtype = config.model.torch_dtype(self.device, checkpoint.dtype_name)
        _limit_cpu_threads(self.device)
        self.model = load_pooling_model(
            checkpoint, self.dtype, self.device, config.model.model_impl,
            is_classifier(checkpoint.architecture),
        )  # fmt: skip
        st = read_sentence_transformers(checkpoint.model_dir)
        self._max_model_len = self._resolve_max_model_len(
            checkpoint.max_position_embeddings, st.max_seq_length if st else None
        )
        self.info: PoolingModelInfo = pooling_model_info(
            checkpoint.architecture, checkpoint.config, st, pooler or PoolerConfig(),
            hidden_size=self.model.hidden_size, num_labels=self.model.num_labels,
            is_causal=self.model.is_causal, max_model_len=self._max_model_len,
        )  # fmt: skip
        self._eos_token_ids = checkpoint.eos_token_ids
        self.scheduler = PoolingScheduler(config.scheduler)
        self.runner = PoolingRunner(self.model, self.info, self.device)
        self._num_tokens_computed = 0
        self._num_running = 0

    # -- the step ------------------------------------------------------------------------
    def step(self) -> list[PoolingOutput]:
        batch = self.scheduler.schedule()
        if not batch:
            return []
        self._num_running = len(batch)
        try:
            results = self.runner.execute(batch)
        finally:
            self._num_running = 0
        self._num_tokens_computed += sum(r.num_tokens for r in batch)
        return [
            PoolingOutput(r.request_id, data, r.num_tokens)
            for r, data in zip(batch, results, strict=True)
        ]

    # -- requests ------------------------------------------------------------------------
    def validate_request(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        params: PoolingParams,
        *,
        priority: int = 0,
        cache_salt: str | None = None,
        encoder_input: object | None = None,
    ) -> None:
        """InvalidParameter for a bad request; reads only immutable facts (any thread)."""
        if encoder_input is not None:
            raise InvalidParameter("input", "a pooling model takes no encoder input")
        if not isinstance(request_id, str) or not request_id:
            raise InvalidParameter("request_id", "request_id must be a non-empty string")
        if not isinstance(params, PoolingParams):
            raise InvalidParameter("params", "a pooling model takes PoolingParams")
        if len(prompt_token_ids) == 0:
            raise InvalidParameter("input", "The input must not be empty.")
        if len(prompt_token_ids) > self._max_model_len:
            raise InvalidParameter(
                "input_tokens",
                f"This model's maximum context length is {self._max_model_len} tokens. "
                f"However, the input has {len(prompt_token_ids)} tokens. Please reduce the "
                "length of the input.",
            )
        bad = [t for t in prompt_token_ids if not 0 <= t < self.vocab_size]
        if bad:
            raise InvalidParameter(
                "input", f"token id {bad[0]} is outside the vocabulary [0, {self.vocab_size})"
            )
        self.info.check_params(params, len(prompt_token_ids))
        policy = self.config.scheduler.policy
        if not isinstance(priority, int) or (policy == "fcfs" and priority != 0):
            raise InvalidParameter(
                "priority",
                f"priority must be 0: this server schedules first-come-first-served "
                f"(scheduling policy {policy!r}), got {priority}",
            )

    def add_request(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        params: PoolingParams,
        *,
        priority: int = 0,
        cache_salt: str | None = None,
        encoder_input: object | None = None,
    ) -> None:
        """cache_salt is accepted and unused: nothing is cached between pooling requests."""
        self.validate_request(
            request_id, prompt_token_ids, params, priority=priority, encoder_input=encoder_input
        )
        if self.scheduler.get(request_id) is not None:
            raise RequestAlreadyExists(request_id)
        self.scheduler.add(request_id, list(prompt_token_ids), params, priority)

    def abort_request(self, request_id: str) -> PoolingOutput | None:
        request = self.scheduler.remove(request_id)
        if request is None:
            return None
        log.info("request aborted", request_id=request_id)
        return PoolingOutput(request_id, None, request.num_tokens, FinishReason.ABORT)

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.num_waiting > 0

    def stats(self) -> EngineStats:
        return EngineStats(
            num_running=self._num_running,
            num_waiting=self.scheduler.num_waiting,
            num_kv_blocks_total=0,
            num_kv_blocks_free=0,
            block_size=0,
            num_tokens_computed=self._num_tokens_computed,
        )

    def check_no_leaks(self) -> None:
        """Nothing outlives a step here."""

    def check_integrity(self) -> None:
        """Nothing outlives a step here."""

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

    def _resolve_max_model_len(self, max_positions: int, st_max: int | None) -> int:
        """The model's own limit (sentence-transformers' max_seq_length if it says one);
        --max-model-len lowers it. A larger --max-model-len (one flag for every served
        model) is clamped here with a warning rather than refused."""
        own = min(max_positions, getattr(self.model, "max_positions", None) or max_positions)
        if st_max:
            own = min(own, int(st_max))
        requested = self.config.model.max_model_len
        if requested is not None and requested > own:
            log.warning("max_model_len above what the model allows; clamped",
                        requested=requested, max_model_len=own)  # fmt: skip
        length = own if requested is None else min(requested, own)
        budget = self.config.scheduler.max_num_batched_tokens
        if budget < length:
            raise ValueError(
                f"a pooling model computes a sequence in one step: max_num_batched_tokens "
                f"({budget}) must be >= max_model_len ({length})"
            )
        return length
