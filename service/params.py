"""Request parameters (proto) to engine SamplingParams plus the options the service
applies itself (n, stop strings, detokenisation, echo). Range checks that need the
model (vocabulary, context length) happen here too; each error names its field."""

from __future__ import annotations

from dataclasses import dataclass

from engine import SamplingParams
from protoserve.common.v1 import params_pb2
from service.errors import InvalidArgument

MAX_STOP_STRINGS = 4
MAX_N = 16384
MAX_CACHE_SALT_CHARS = 128
CACHE_SALT_FORBIDDEN = ("@", "/", "\\", "\x00")


@dataclass(frozen=True)
class OutputSettings:
    """What the service does with the engine's tokens for one request."""

    n: int = 1
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    echo: bool = False
    return_prompt_token_ids: bool = False
    return_prompt_text: bool = False
    continuous_usage_stats: bool = False


@dataclass(frozen=True)
class RequestParams:
    sampling: SamplingParams
    output: OutputSettings


def build_params(
    sampling: params_pb2.SamplingParams,
    penalties: params_pb2.PenaltyParams,
    stopping: params_pb2.StoppingParams,
    output: params_pb2.OutputOptions,
    *,
    max_tokens: int,
    vocab_size: int,
) -> RequestParams:
    """`max_tokens` is the budget already resolved against the context (see prompts.py)."""
    reject_unsupported(sampling, penalties, stopping, output)
    temperature = sampling.temperature if sampling.HasField("temperature") else 1.0
    top_p = sampling.top_p if sampling.HasField("top_p") else 1.0
    top_k = sampling.top_k if sampling.HasField("top_k") else 0
    n = sampling.n if sampling.HasField("n") else 1
    _check_n(n, temperature)
    engine_params = SamplingParams(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=sampling.seed if sampling.HasField("seed") else None,
        max_tokens=max_tokens,
        min_tokens=stopping.min_tokens,
        stop_token_ids=tuple(stopping.stop_token_ids),
        ignore_eos=stopping.ignore_eos,
    )
    engine_params.validate(vocab_size)
    return RequestParams(engine_params, _output_settings(n, stopping, output))


def _check_n(n: int, temperature: float) -> None:
    """n is the service's (one engine request per choice); the engine checks the rest."""
    if not 1 <= n <= MAX_N:
        raise InvalidArgument(f"n must be in [1, {MAX_N}], got {n}.", "n")
    if n > 1 and temperature == 0.0:
        raise InvalidArgument("n must be 1 when using greedy sampling.", "n")


def _output_settings(
    n: int, stopping: params_pb2.StoppingParams, output: params_pb2.OutputOptions
) -> OutputSettings:
    stops = tuple(stopping.stop)
    if len(stops) > MAX_STOP_STRINGS:
        raise InvalidArgument(f"at most {MAX_STOP_STRINGS} stop strings are allowed.", "stop")
    if any(not s for s in stops):
        raise InvalidArgument("stop strings must not be empty.", "stop")
    return OutputSettings(
        n=n,
        stop=stops,
        include_stop_str_in_output=stopping.include_stop_str_in_output,
        skip_special_tokens=(
            output.skip_special_tokens if output.HasField("skip_special_tokens") else True
        ),
        echo=output.echo,
        return_prompt_token_ids=output.return_prompt_token_ids,
        return_prompt_text=output.return_prompt_text,
        continuous_usage_stats=output.continuous_usage_stats,
    )


def reject_unsupported(
    sampling: params_pb2.SamplingParams,
    penalties: params_pb2.PenaltyParams,
    stopping: params_pb2.StoppingParams,
    output: params_pb2.OutputOptions,
) -> None:
    """Parameters this server does not implement yet are refused, never ignored."""
    unsupported = {
        "min_p": sampling.HasField("min_p") and sampling.min_p != 0.0,
        "best_of": sampling.HasField("best_of") and sampling.best_of != (sampling.n or 1),
        "use_beam_search": sampling.use_beam_search,
        "length_penalty": sampling.HasField("length_penalty") and sampling.length_penalty != 1.0,
        "presence_penalty": penalties.presence_penalty != 0.0,
        "frequency_penalty": penalties.frequency_penalty != 0.0,
        "repetition_penalty": (
            penalties.HasField("repetition_penalty") and penalties.repetition_penalty != 1.0
        ),
        "logit_bias": bool(penalties.logit_bias),
        "allowed_token_ids": bool(penalties.allowed_token_ids),
        "bad_words": bool(penalties.bad_words),
        "repetition_detection": stopping.HasField("repetition_detection"),
        "logprobs": output.HasField("logprobs"),
        "prompt_logprobs": output.HasField("prompt_logprobs"),
        "logprob_token_ids": bool(output.logprob_token_ids),
        "return_tokens_as_token_ids": output.return_tokens_as_token_ids,
        "spaces_between_special_tokens": (
            output.HasField("spaces_between_special_tokens")
            and not output.spaces_between_special_tokens
        ),
        "stream_interval": output.HasField("stream_interval") and output.stream_interval != 1,
    }
    for name, present in unsupported.items():
        if present:
            raise InvalidArgument(f"`{name}` is not supported by this server yet.", field=name)


def check_cache_salt(salt: str) -> str | None:
    """The request's cache salt (None when unset): 1-128 chars, none of @ / \\ NUL."""
    if not salt:
        return None
    if len(salt) > MAX_CACHE_SALT_CHARS or any(c in salt for c in CACHE_SALT_FORBIDDEN):
        raise InvalidArgument(
            f"cache_salt must be 1-{MAX_CACHE_SALT_CHARS} characters without @ / \\ or NUL.",
            "cache_salt",
        )
    return salt
