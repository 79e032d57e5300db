"""PoolingParams: what a pooling request asks of the engine, and the checks that depend
only on the request. Checks against the model (is the task served, is `dimensions`
allowed) are PoolingModelInfo.check_params."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InvalidParameter

EMBED, CLASSIFY, TOKEN_EMBED, TOKEN_CLASSIFY = "embed", "classify", "token_embed", "token_classify"
POOLING_TASKS = (EMBED, CLASSIFY, TOKEN_EMBED, TOKEN_CLASSIFY)
# The parameters each task takes besides use_activation (vLLM's per-task lists).
_TASK_PARAMS: dict[str, tuple[str, ...]] = {
    EMBED: ("dimensions",),
    TOKEN_EMBED: ("dimensions",),
    CLASSIFY: (),
    TOKEN_CLASSIFY: (),
}


@dataclass(frozen=True)
class PoolingParams:
    task: str = EMBED
    # embed / token_embed: L2-normalise; classify: softmax (several labels) or sigmoid (one).
    # None = the model's default (PoolingModelInfo.normalize for embeddings; on for classify).
    use_activation: bool | None = None
    # Matryoshka truncation of embeddings to this many dimensions (before normalising).
    dimensions: int | None = None
    # Segment ids of a text pair (cross-encoders with token types); None = all zeros.
    token_type_ids: tuple[int, ...] | None = None

    def validate(self) -> None:
        if self.task not in POOLING_TASKS:
            raise InvalidParameter(
                "task", f"task must be one of {POOLING_TASKS}, got {self.task!r}"
            )
        given = [name for name in ("dimensions",) if getattr(self, name) is not None]
        refused = [name for name in given if name not in _TASK_PARAMS[self.task]]
        if refused:
            raise InvalidParameter(
                refused[0],
                f"Task '{self.task}' only supports "
                f"{['use_activation', *_TASK_PARAMS[self.task]]} parameters, does not support "
                f"{refused} parameters",
            )
        if self.dimensions is not None and self.dimensions < 1:
            raise InvalidParameter(
                "dimensions", f"dimensions must be at least 1, got {self.dimensions}"
            )
