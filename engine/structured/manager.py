"""Per-request grammar matchers and the step's batched token bitmask.

Each step the sampler asks for the constrained rows' masks: they are computed in
parallel into one int32 bitmask [rows, ceil(V / 32)] (llguidance's executor releases the
GIL), unpacked once and applied to those rows of the logits. After sampling, each
matcher consumes its token; a matcher that can accept nothing more (the grammar is
complete) finishes its request."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import structlog
import torch

from engine.errors import InvalidParameter
from engine.structured.compiler import GrammarCompiler, field_of
from engine.structured.spec import StructuredOutputSpec, TokenizerInfo

log = structlog.get_logger(__name__)


class StructuredOutputs:
    def __init__(self, vocab_size: int, device: torch.device) -> None:
        self.vocab_size = vocab_size
        self.device = device
        self._info: TokenizerInfo | None = None
        self._compiler: GrammarCompiler | None = None
        self._lock = threading.Lock()
        self._matchers: dict[str, object] = {}
        self._executor = None
        self._bitmask = torch.zeros(0, 0, dtype=torch.int32)

    def set_tokenizer(self, info: TokenizerInfo, eager: bool = True) -> None:
        """Enable structured outputs: the grammar engine needs the vocabulary. Eager: build
        the compiler now (0.1-0.5 s for a large vocabulary) rather than on the first
        structured request, whose validation runs on the service's event loop."""
        with self._lock:
            self._info, self._compiler = info, None
        if eager:
            self.compiler(StructuredOutputSpec("json_object"))

    def compiler(self, spec: StructuredOutputSpec) -> GrammarCompiler:
        with self._lock:
            if self._compiler is None:
                if self._info is None:
                    raise InvalidParameter(
                        field_of(spec), "structured outputs are not available for this model"
                    )
                import llguidance

                self._compiler = GrammarCompiler(self._info)
                self._executor = llguidance.LLExecutor()
            return self._compiler

    def validate(self, spec: StructuredOutputSpec) -> None:
        """Compile (or find cached) the spec's grammar: InvalidParameter when malformed."""
        self.compiler(spec).compile(spec)

    def add_request(self, request_id: str, spec: StructuredOutputSpec) -> None:
        self._matchers[request_id] = self.compiler(spec).compile(spec).deep_copy()

    def remove_request(self, request_id: str) -> None:
        self._matchers.pop(request_id, None)

    def has(self, request_id: str) -> bool:
        return request_id in self._matchers

    def apply(self, logits: torch.Tensor, rows: Sequence[int], request_ids: Sequence[str]) -> None:
        """-inf on these rows for every token their grammar does not allow next."""
        words = (self.vocab_size + 31) // 32
        if self._bitmask.shape[0] < len(rows) or self._bitmask.shape[1] != words:
            self._bitmask = torch.zeros(max(len(rows), 16), words, dtype=torch.int32)
        bitmask = self._bitmask[: len(rows)]
        matchers = [(self._matchers[r], i) for i, r in enumerate(request_ids)]
        self._executor.unsafe_compute_mask_ptr(
            matchers, bitmask.data_ptr(), words * 4, bitmask.shape[0]
        )
        bits = np.unpackbits(
            bitmask.numpy().view(np.uint8), axis=1, count=logits.shape[-1], bitorder="little"
        )
        banned = torch.from_numpy(bits.view(np.bool_)).logical_not_().to(self.device)
        index = torch.tensor(list(rows), dtype=torch.int64, device=self.device)
        selected = logits.index_select(0, index).masked_fill_(banned, float("-inf"))
        logits.index_copy_(0, index, selected)

    def accept(self, request_id: str, token_id: int) -> None:
        matcher = self._matchers[request_id]
        if not matcher.consume_token(token_id):
            log.warning(
                "grammar rejected a sampled token", request_id=request_id, token_id=token_id,
                error=matcher.get_error(),
            )  # fmt: skip

    def is_finished(self, request_id: str) -> bool:
        """The grammar is complete (or failed): nothing more can follow."""
        matcher = self._matchers.get(request_id)
        return matcher is not None and (matcher.is_stopped() or matcher.is_error())
