"""What a pooling engine hands back: one output per request, when its batch ran."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.request import FinishReason


@dataclass(frozen=True)
class PoolingOutput:
    request_id: str
    # The pooled result, float32 on the host: [H] (embed), [num_labels] (classify) or
    # [tokens, H] (token_embed, ALL / STEP pooling). None when aborted.
    data: torch.Tensor | None
    num_prompt_tokens: int
    finish_reason: FinishReason = FinishReason.STOP
    finished: bool = True  # one step computes a request whole (the async face reads this)
