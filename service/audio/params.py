"""Transcription and translation parameters (proto) -> engine SamplingParams.

Temperature defaults to 0 (greedy), as in vLLM and OpenAI. Sampling knobs and penalties
carry over; what has no meaning for speech here (several choices, beam search, stop
strings, logit bias, ...) is refused with the field named, never ignored."""

from __future__ import annotations

import math

from engine import SamplingParams
from protoserve.common.v1 import params_pb2
from service.errors import InvalidArgument


def audio_sampling(
    sampling: params_pb2.SamplingParams,
    penalties: params_pb2.PenaltyParams,
    stopping: params_pb2.StoppingParams,
    vocab_size: int,
) -> tuple[SamplingParams, int | None]:
    """The engine parameters (max_tokens is set per window later) and the most tokens a
    window may decode (None: as many as fit)."""
    _reject_unsupported(sampling, penalties, stopping)
    max_new_tokens = stopping.max_tokens if stopping.HasField("max_tokens") else None
    if max_new_tokens is not None and max_new_tokens < 1:
        raise InvalidArgument(f"max_tokens must be >= 1, got {max_new_tokens}.", "max_tokens")
    params = SamplingParams(
        temperature=sampling.temperature if sampling.HasField("temperature") else 0.0,
        top_p=sampling.top_p if sampling.HasField("top_p") else 1.0,
        top_k=sampling.top_k if sampling.HasField("top_k") else 0,
        min_p=sampling.min_p if sampling.HasField("min_p") else 0.0,
        seed=sampling.seed if sampling.HasField("seed") else None,
        presence_penalty=penalties.presence_penalty,
        frequency_penalty=penalties.frequency_penalty,
        repetition_penalty=(
            penalties.repetition_penalty if penalties.HasField("repetition_penalty") else 1.0
        ),
    )
    params.validate(vocab_size)
    return params, max_new_tokens


def _reject_unsupported(
    sampling: params_pb2.SamplingParams,
    penalties: params_pb2.PenaltyParams,
    stopping: params_pb2.StoppingParams,
) -> None:
    unsupported = {
        "n": sampling.HasField("n") and sampling.n != 1,
        "best_of": sampling.HasField("best_of") and sampling.best_of != 1,
        "use_beam_search": sampling.use_beam_search,
        "length_penalty": sampling.HasField("length_penalty")
        and not math.isclose(sampling.length_penalty, 1.0),
        "logit_bias": bool(penalties.logit_bias),
        "allowed_token_ids": bool(penalties.allowed_token_ids),
        "bad_words": bool(penalties.bad_words),
        "stop": bool(stopping.stop),
        "stop_token_ids": bool(stopping.stop_token_ids),
        "min_tokens": stopping.min_tokens != 0,
        "ignore_eos": stopping.ignore_eos,
    }
    for name, present in unsupported.items():
        if present:
            raise InvalidArgument(
                f"`{name}` is not supported for transcription and translation.", name
            )
