"""The model runner of encoder-decoder models (Whisper): the decoder batch goes through
the paged KV cache exactly as a decoder-only model's does; before it, the step's requests
that have not been encoded yet run the encoder together (EncoderCache), and the step's
rows are told whose cross-attention K/V they read. After it, the model's decoding rules
constrain the sampling rows' logits (they need each request's decoder tokens, which this
runner records from the scheduled tokens: no request internals are read).

Per-request state (encoder input or K/V, rules, tokens) is created by `add_encoder_input`
and dropped by `release`, which the engine calls when the request finishes or aborts."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from engine.attention.base import AttentionBackend, KVCache
from engine.encoder_cache import EncoderCache, EncoderInput
from engine.model_runner import ModelRunner
from engine.models.whisper import CrossAttentionMetadata
from engine.models.whisper_decoding import DecodeRow
from engine.scheduler_output import ScheduledSequence, SchedulerOutput


class EncoderDecoderRunner(ModelRunner):
    def __init__(
        self,
        model: nn.Module,
        backend: AttentionBackend,
        kv_caches: list[KVCache],
        block_size: int,
        device: torch.device,
        dtype: torch.dtype,
        *,
        profiling: bool = False,
    ) -> None:
        super().__init__(model, backend, kv_caches, block_size, device)
        self.encoder_cache = EncoderCache(model.encode, device, dtype)
        self._decoding: dict[str, Any] = {}  # request id -> model decoding rules (or None)
        self._tokens: dict[str, list[int]] = {}  # request id -> decoder tokens by position
        self._profiling = profiling  # the memory profile: unknown ids get a dummy input

    # -- per-request state ---------------------------------------------------------------
    def add_encoder_input(self, request_id: str, encoder_input: EncoderInput) -> None:
        self.encoder_cache.add(request_id, encoder_input.features)
        self._decoding[request_id] = encoder_input.decoding
        self._tokens[request_id] = []

    def release(self, request_id: str) -> None:
        self.encoder_cache.release(request_id)
        self._decoding.pop(request_id, None)
        self._tokens.pop(request_id, None)

    def live_request_ids(self) -> set[str]:
        return self.encoder_cache.request_ids() | set(self._tokens)

    # -- one step ------------------------------------------------------------------------
    @torch.inference_mode()
    def execute(self, batch: SchedulerOutput) -> torch.Tensor:
        """As ModelRunner.execute; the sampling rows' logits are constrained."""
        self.copy_blocks(batch.blocks_to_copy)
        seqs = batch.sequences
        if self._profiling:
            self._add_dummy_inputs(seqs)
        self._record_tokens(seqs)
        self.encoder_cache.encode_missing([s.request_id for s in seqs])
        inputs = self.prepare_inputs(batch)
        cross = self._cross_metadata(seqs)
        self.backend.prepare(inputs.attn_metadata)
        hidden = self.model(
            inputs.input_ids, inputs.positions, inputs.attn_metadata, self.kv_caches, cross
        )
        logits = self.model.compute_logits(hidden[inputs.logits_indices]).float()
        sampling = batch.sampling_sequences
        self.model.constrain_logits(logits[: len(sampling)], self._decode_rows(sampling))
        return logits

    def _record_tokens(self, seqs: list[ScheduledSequence]) -> None:
        for seq in seqs:
            tokens = self._tokens[seq.request_id]
            assert len(tokens) >= seq.start_position, "tokens arrive in position order"
            tokens[seq.start_position : seq.context_len] = seq.token_ids

    def _cross_metadata(self, seqs: list[ScheduledSequence]) -> CrossAttentionMetadata:
        starts = list(itertools.accumulate((s.num_new_tokens for s in seqs), initial=0))
        decodes = [i for i, s in enumerate(seqs) if s.num_new_tokens == 1]
        cache = self.encoder_cache
        return CrossAttentionMetadata(
            decode_rows=self._tensor([starts[i] for i in decodes]),
            decode_kv=cache.stacked([seqs[i].request_id for i in decodes]) if decodes else None,
            prefills=[
                (starts[i], s.num_new_tokens, cache.get(s.request_id))
                for i, s in enumerate(seqs)
                if s.num_new_tokens > 1
            ],
        )

    def _decode_rows(self, seqs: list[ScheduledSequence]) -> list[DecodeRow | None]:
        rows: list[DecodeRow | None] = []
        for seq in seqs:
            decoding = self._decoding.get(seq.request_id)
            tokens = self._tokens[seq.request_id]
            rows.append(None if decoding is None else DecodeRow(decoding, tokens, seq.context_len))
        return rows

    def _add_dummy_inputs(self, seqs: list[ScheduledSequence]) -> None:
        for seq in seqs:
            if seq.request_id not in self._tokens:
                self.add_encoder_input(seq.request_id, EncoderInput(self.model.dummy_features()))
