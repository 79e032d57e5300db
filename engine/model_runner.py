"""Mechanism for one forward pass: SchedulerOutput -> batch tensors -> model -> logits.

The runner reads only the SchedulerOutput contract, never Request objects."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from engine.attention.base import AttentionBackend, AttentionMetadata, KVCache, PrefillSpan
from engine.scheduler import ScheduledSequence, SchedulerOutput


@dataclass(frozen=True)
class ModelInputs:
    input_ids: torch.Tensor  # [T] int64
    positions: torch.Tensor  # [T] int64
    attn_metadata: AttentionMetadata
    logits_indices: torch.Tensor  # [N] rows whose logits are sampled (last row of each)


class ModelRunner:
    def __init__(
        self,
        model: nn.Module,
        backend: AttentionBackend,
        kv_caches: list[KVCache],
        block_size: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.backend = backend
        self.kv_caches = kv_caches
        self.block_size = block_size
        self.device = device

    @torch.inference_mode()
    def execute(self, batch: SchedulerOutput) -> torch.Tensor:
        """Logits [N, vocab] (float32) for the sequences that sample, in batch order; then,
        only when some sequence wants them, one row per position of
        `batch.prompt_logits_spans`, in that order."""
        self.copy_blocks(batch.blocks_to_copy)
        inputs = self.prepare_inputs(batch)
        self.backend.prepare(inputs.attn_metadata)
        hidden = self.model(
            inputs.input_ids, inputs.positions, inputs.attn_metadata, self.kv_caches
        )
        return self.model.compute_logits(hidden[inputs.logits_indices]).float()

    def release(self, request_id: str) -> None:
        """Drop the state a runner keeps per request (the engine calls it when a request
        finishes or aborts). Decoder-only models keep none."""

    def live_request_ids(self) -> set[str]:
        """Requests this runner holds state for (integrity checks)."""
        return set()

    def prepare_inputs(self, batch: SchedulerOutput) -> ModelInputs:
        seqs = batch.sequences
        query_lens = [s.num_new_tokens for s in seqs]
        starts = list(itertools.accumulate(query_lens, initial=0))  # row offsets, [B + 1]
        input_ids = self._tensor(list(itertools.chain.from_iterable(s.token_ids for s in seqs)))
        positions = self._tensor(
            list(
                itertools.chain.from_iterable(range(s.start_position, s.context_len) for s in seqs)
            )
        )
        block_tables = self._block_tables(seqs)
        metadata = self._attention_metadata(seqs, starts, positions, block_tables)
        logits_rows = [starts[i + 1] - 1 for i, s in enumerate(seqs) if s.samples]
        for i, s in enumerate(seqs):  # prompt logprobs: rows of the chunk's prompt positions
            logits_rows += [starts[i] + p - s.start_position for p in s.prompt_logits_positions]
        return ModelInputs(input_ids, positions, metadata, self._tensor(logits_rows))

    def copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        """Copy-on-write of shared KV blocks: K and V of block src into dst, every layer."""
        if not pairs:
            return
        src = self._tensor([s for s, _ in pairs])
        dst = self._tensor([d for _, d in pairs])
        for k_cache, v_cache in self.kv_caches:
            k_cache[dst] = k_cache[src]
            v_cache[dst] = v_cache[src]

    def _attention_metadata(
        self,
        seqs: list[ScheduledSequence],
        starts: list[int],
        positions: torch.Tensor,
        block_tables: torch.Tensor,
    ) -> AttentionMetadata:
        query_lens = [s.num_new_tokens for s in seqs]
        seq_of_row = torch.repeat_interleave(
            torch.arange(len(seqs), device=self.device), self._tensor(query_lens)
        )
        block_of_row = block_tables[seq_of_row, positions // self.block_size]
        slot_mapping = block_of_row * self.block_size + positions % self.block_size
        decodes = [i for i, n in enumerate(query_lens) if n == 1]
        decode_index = self._tensor(decodes)
        return AttentionMetadata(
            num_tokens=starts[-1],
            block_size=self.block_size,
            slot_mapping=slot_mapping,
            query_start_loc=self._tensor(starts, torch.int32),
            context_lens=self._tensor([s.context_len for s in seqs], torch.int32),
            block_tables=block_tables,
            decode_token_indices=self._tensor([starts[i] for i in decodes]),
            decode_block_tables=block_tables[decode_index],
            decode_context_lens=self._tensor([seqs[i].context_len for i in decodes]),
            max_decode_context_len=max((seqs[i].context_len for i in decodes), default=0),
            prefills=[
                self._prefill_span(i, s, starts[i], block_tables)
                for i, s in enumerate(seqs)
                if s.num_new_tokens > 1
            ],
        )

    def _prefill_span(
        self, index: int, seq: ScheduledSequence, start: int, block_tables: torch.Tensor
    ) -> PrefillSpan:
        num_blocks = -(-seq.context_len // self.block_size)
        return PrefillSpan(
            start, seq.num_new_tokens, seq.context_len, block_tables[index, :num_blocks]
        )

    def _block_tables(self, seqs: list[ScheduledSequence]) -> torch.Tensor:
        width = max(len(s.block_ids) for s in seqs)
        rows = [s.block_ids + [0] * (width - len(s.block_ids)) for s in seqs]
        return self._tensor(rows)

    def _tensor(self, values: list, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype).to(self.device, non_blocking=True)
