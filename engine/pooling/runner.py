"""Mechanism for one pooling step: requests -> padded batch -> model -> pooled outputs.

One forward pass for the batch; then per task one batched pooling call and one batched
activation (rows that share settings share the call)."""

from __future__ import annotations

import torch
from torch import nn

from engine.pooling.batch import EncoderOutput, PaddedBatch, pad_batch
from engine.pooling.model_info import PoolingModelInfo
from engine.pooling.params import CLASSIFY, EMBED, TOKEN_EMBED
from engine.pooling.pooler import (
    TOKEN_POOLERS,
    finish_classifications,
    finish_embeddings,
    finish_token_embeddings,
    pool_sequences,
    pool_tokens,
)
from engine.pooling.scheduler import PoolingRequest


class PoolingRunner:
    def __init__(self, model: nn.Module, info: PoolingModelInfo, device: torch.device) -> None:
        self.model = model
        self.info = info
        self.device = device
        self.pad_id = int(getattr(model, "pad_token_id", 0))
        self.with_types = info.type_vocab_size > 1

    @torch.inference_mode()
    def execute(self, requests: list[PoolingRequest]) -> list[torch.Tensor]:
        """One output per request, in order, float32 on the host (one copy per task)."""
        batch = pad_batch(
            [r.prompt_token_ids for r in requests],
            [r.params.token_type_ids for r in requests],
            self.pad_id,
            self.device,
            self.with_types,
        )
        output = self.model(batch)
        results: list[torch.Tensor | None] = [None] * len(requests)
        by_task: dict[str, list[int]] = {}
        for row, request in enumerate(requests):
            by_task.setdefault(request.params.task, []).append(row)
        for task, rows in by_task.items():
            picked = [requests[r] for r in rows]
            for row, value in zip(rows, self._task_outputs(task, picked, rows, batch, output),
                                  strict=True):  # fmt: skip
                results[row] = value
        return results  # type: ignore[return-value]

    def _task_outputs(
        self,
        task: str,
        requests: list[PoolingRequest],
        rows: list[int],
        batch: PaddedBatch,
        output: EncoderOutput,
    ) -> list[torch.Tensor]:
        if task == CLASSIFY:
            assert output.logits is not None, "classify on a model without a classifier head"
            activate = [r.params.use_activation is not False for r in requests]
            logits = output.logits[rows].float().cpu()  # one host copy for the batch
            return finish_classifications(logits, activate, self.info.multi_label)
        normalize = [
            self.info.normalize if r.params.use_activation is None else r.params.use_activation
            for r in requests
        ]
        kind = "ALL" if task == TOKEN_EMBED else self.info.pooling_type
        if kind in TOKEN_POOLERS:
            step = kind == "STEP"
            matrices = pool_tokens(
                output.hidden, batch, rows,
                self.info.step_tag_id if step else None,
                self.info.returned_token_ids if step else None,
            )  # fmt: skip
            return [
                finish_token_embeddings(m.cpu(), r.params.dimensions, n)
                for m, r, n in zip(matrices, requests, normalize, strict=True)
            ]
        assert task == EMBED, task
        index = torch.tensor(rows, device=output.hidden.device)
        vectors = pool_sequences(kind, output.hidden, batch, index).cpu()
        settings = [(r.params.dimensions, n) for r, n in zip(requests, normalize, strict=True)]
        return finish_embeddings(vectors, settings)
