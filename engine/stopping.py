"""When a request is done, decided after each sampled token."""

from __future__ import annotations

from dataclasses import dataclass

from engine.request import Request, RequestStatus


@dataclass(frozen=True)
class StopDecision:
    status: RequestStatus  # FINISHED_STOPPED or FINISHED_LENGTH
    stop_token_id: int | None = None  # the EOS / stop token id, for FINISHED_STOPPED


class StopChecker:
    def __init__(self, eos_token_ids: tuple[int, ...], max_model_len: int) -> None:
        self.eos_token_ids = frozenset(eos_token_ids)
        self.max_model_len = max_model_len

    def check(self, request: Request) -> StopDecision | None:
        """EOS (unless ignore_eos) and stop ids count once min_tokens were generated before
        them; then max_tokens and the context length end the request (LENGTH)."""
        params = request.sampling_params
        token = request.output_token_ids[-1]
        if request.num_output_tokens > params.min_tokens:
            if token in params.stop_token_ids:
                return StopDecision(RequestStatus.FINISHED_STOPPED, token)
            if not params.ignore_eos and token in self.eos_token_ids:
                return StopDecision(RequestStatus.FINISHED_STOPPED, token)
        if (
            request.num_output_tokens >= params.max_tokens
            or request.num_tokens >= self.max_model_len
        ):
            return StopDecision(RequestStatus.FINISHED_LENGTH)
        return None
