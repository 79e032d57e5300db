"""Per-request observability: the clock a request carries while it runs, and the meter
that, when it ends, writes its log line ("request finished": request id, model, token
counts, latency; off with --disable-log-requests) and feeds the Prometheus metrics
(service/metrics.py; one record per engine request: per choice, per pooled input)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog

from service.metrics import RequestMetrics, RequestRecord

log = structlog.get_logger(__name__)

# How a choice that never finished ended, by cause (log value -> metric finish reason).
CANCELLED, FAILED = "cancelled", "error"
_METRIC_REASON = {CANCELLED: "abort", FAILED: "error"}


@dataclass
class _Choice:
    first_token: float | None = None
    last_token: float | None = None
    tokens: int = 0
    gaps: list[float] = field(default_factory=list)


@dataclass
class RequestClock:
    """Token arrival times of one request's choices (generation) or of its inputs."""

    request_id: str
    prompt_tokens: int
    started: float = field(default_factory=time.monotonic)
    choices: dict[int, _Choice] = field(default_factory=dict)

    def tokens(self, index: int, count: int) -> None:
        """`count` tokens of choice `index` went out now."""
        if not count:
            return
        now, choice = time.monotonic(), self.choices.setdefault(index, _Choice())
        if choice.first_token is None:
            choice.first_token = now
        elif choice.last_token is not None:
            choice.gaps.append(now - choice.last_token)
        choice.last_token, choice.tokens = now, choice.tokens + count

    @property
    def time_to_first_token(self) -> float | None:
        firsts = [c.first_token for c in self.choices.values() if c.first_token is not None]
        return min(firsts) - self.started if firsts else None


@dataclass(frozen=True)
class RequestMeter:
    """One per served model; `metrics` None = no metrics (tests, tools)."""

    model_name: str = ""
    metrics: RequestMetrics | None = None
    log_requests: bool = True

    def start(self, request_id: str, prompt_tokens: int) -> RequestClock:
        return RequestClock(request_id, prompt_tokens)

    def finish_generation(
        self, clock: RequestClock, finish_reasons: list[str], cached_tokens: int
    ) -> None:
        """A generation request ended: one reason per choice (stop, length, abort, or
        CANCELLED / FAILED when the caller went away or the request failed)."""
        latency = time.monotonic() - clock.started
        if self.metrics is not None:
            for index, reason in enumerate(finish_reasons):
                choice = clock.choices.get(index, _Choice())
                first = choice.first_token
                self.metrics.observe(
                    RequestRecord(
                        self.model_name,
                        clock.prompt_tokens,
                        choice.tokens,
                        _METRIC_REASON.get(reason, reason),
                        latency,
                        first - clock.started if first is not None else None,
                        tuple(choice.gaps),
                        cached_tokens if index == 0 else 0,
                    )
                )
        if self.log_requests:
            log.info(
                "request finished",
                request_id=clock.request_id,
                model=self.model_name,
                prompt_tokens=clock.prompt_tokens,
                completion_tokens=sum(c.tokens for c in clock.choices.values()),
                cached_tokens=cached_tokens,
                finish_reasons=finish_reasons,
                ttft_s=_round(clock.time_to_first_token),
                latency_s=_round(latency),
            )

    def finish_pooling(self, clock: RequestClock, inputs: list[int], outcome: str) -> None:
        """A pooling request ended: the prompt length of each input; outcome "stop",
        CANCELLED or FAILED."""
        latency = time.monotonic() - clock.started
        if self.metrics is not None:
            reason = _METRIC_REASON.get(outcome, outcome)
            for prompt_tokens in inputs:
                self.metrics.observe(
                    RequestRecord(self.model_name, prompt_tokens, 0, reason, latency)
                )
        if self.log_requests:
            log.info(
                "request finished",
                request_id=clock.request_id,
                model=self.model_name,
                prompt_tokens=sum(inputs),
                inputs=len(inputs),
                outcome=outcome,
                latency_s=_round(latency),
            )


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)
