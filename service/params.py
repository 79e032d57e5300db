"""Request parameters (proto) to engine SamplingParams plus the options the service
applies itself (n, best_of, stop strings, detokenisation, echo, logprobs rendering).
Defaults resolve as: the request's value -> the model's generation config (server
default) -> the neutral default. Range checks that need the model (vocabulary, context
length, --max-logprobs) happen here too; each error names its field."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from engine import SamplingParams
from protoserve.common.v1 import params_pb2
from service.errors import InvalidArgument
from service.registry import ServedModel
from service.structured import structured_spec

log = structlog.get_logger(__name__)

MAX_STOP_STRINGS = 4
MAX_N = 16384
MAX_CACHE_SALT_CHARS = 128
CACHE_SALT_FORBIDDEN = ("@", "/", "\\", "\x00")
MIN_TEMPERATURE = 0.01  # 0 < t < this is raised to it (vLLM)
NO_SEED = -1  # seed -1: no per-request generator (vLLM)
UNLIMITED_THINKING = -1  # thinking_token_budget -1: no cap (what the server does anyway)


@dataclass(frozen=True)
class OutputSettings:
    """What the service does with the engine's tokens for one request."""

    n: int = 1
    best_of: int = 1  # candidates sampled; the n best (cumulative logprob) are returned
    use_beam_search: bool = False  # one engine request yields the n best beams
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    echo: bool = False
    logprobs: bool = False  # return the sample logprobs (the engine may compute them anyway)
    return_tokens_as_token_ids: bool = False
    return_prompt_token_ids: bool = False
    return_prompt_text: bool = False
    continuous_usage_stats: bool = False


@dataclass(frozen=True)
class RequestParams:
    sampling: SamplingParams
    output: OutputSettings


def build_params(request, model: ServedModel, *, max_tokens: int) -> RequestParams:
    """`request`: a GenerateRequest or ChatRequest; `max_tokens`: the budget already
    resolved against the context (see prompts.py)."""
    sampling, penalties = request.sampling, request.penalties
    stopping, output = request.stopping, request.output
    reject_unsupported(sampling, penalties, stopping, output)
    _check_thinking_budget(request)
    defaults = model.defaults
    temperature = _temperature(_get(sampling, "temperature", defaults.temperature, 1.0))
    n = sampling.n if sampling.HasField("n") else 1
    best_of = sampling.best_of if sampling.HasField("best_of") else n
    beam = sampling.use_beam_search
    _check_n(n, best_of, temperature, beam)
    logprobs = _logprobs(output, "logprobs", "sample", model)
    prompt_logprobs = _logprobs(output, "prompt_logprobs", "prompt", model)
    if beam and output.echo and logprobs is not None:
        raise InvalidArgument("beam search does not support echo with logprobs.", "use_beam_search")
    sample_logprobs = logprobs
    if sample_logprobs is None and best_of > n and not beam:
        sample_logprobs = 0  # the chosen tokens' logprobs rank the candidates
    engine_params = SamplingParams(
        temperature=temperature,
        top_p=_get(sampling, "top_p", defaults.top_p, 1.0),
        top_k=_get(sampling, "top_k", defaults.top_k, 0),
        min_p=_get(sampling, "min_p", defaults.min_p, 0.0),
        seed=sampling.seed if sampling.HasField("seed") and sampling.seed != NO_SEED else None,
        max_tokens=max_tokens,
        min_tokens=stopping.min_tokens,
        stop_token_ids=tuple(stopping.stop_token_ids),
        ignore_eos=stopping.ignore_eos,
        presence_penalty=_get(penalties, "presence_penalty", defaults.presence_penalty, 0.0),
        frequency_penalty=_get(penalties, "frequency_penalty", defaults.frequency_penalty, 0.0),
        repetition_penalty=_get(penalties, "repetition_penalty", defaults.repetition_penalty, 1.0),
        logit_bias=tuple(sorted(penalties.logit_bias.items())),
        allowed_token_ids=tuple(penalties.allowed_token_ids) or None,
        bad_words_token_ids=_bad_words(list(penalties.bad_words), model),
        logprobs=sample_logprobs,
        prompt_logprobs=prompt_logprobs,
        logprob_token_ids=tuple(output.logprob_token_ids),
        structured_output=(
            structured_spec(request.structured_output)
            if request.HasField("structured_output")
            else None
        ),
        use_beam_search=beam,
        beam_width=max(n, best_of) if beam else 1,
        length_penalty=_get(sampling, "length_penalty", None, 1.0),
    )
    engine_params.validate(model.vocab_size)
    settings = _output_settings(n, best_of, beam, logprobs is not None, stopping, output, model)
    return RequestParams(engine_params, settings)


def _get(message, name: str, server_default, neutral):
    if message.HasField(name):
        return getattr(message, name)
    return neutral if server_default is None else server_default


def _temperature(value: float) -> float:
    if 0.0 < value < MIN_TEMPERATURE:
        log.warning("temperature raised to the minimum", requested=value, used=MIN_TEMPERATURE)
        return MIN_TEMPERATURE
    return value


def _check_n(n: int, best_of: int, temperature: float, beam: bool) -> None:
    """n and best_of are the service's (one engine request per candidate); the engine
    checks the rest."""
    if not 1 <= n <= MAX_N:
        raise InvalidArgument(f"n must be in [1, {MAX_N}], got {n}.", "n")
    if not n <= best_of <= MAX_N:
        raise InvalidArgument(f"best_of must be in [n, {MAX_N}] (n={n}), got {best_of}.", "best_of")
    if not beam and temperature == 0.0:
        if n > 1:
            raise InvalidArgument("n must be 1 when using greedy sampling.", "n")
        if best_of > 1:
            raise InvalidArgument("best_of must be 1 when using greedy sampling.", "best_of")


def _logprobs(output: params_pb2.OutputOptions, name: str, kind: str, model: ServedModel):
    """The requested count (-1 = the whole vocabulary), checked against --max-logprobs."""
    if not output.HasField(name):
        return None
    value = getattr(output, name)
    if value < -1:
        raise InvalidArgument(f"{name} must be >= 0 or -1 (all), got {value}.", name)
    wanted = model.vocab_size if value == -1 else value
    limit = model.vocab_size if model.max_logprobs == -1 else model.max_logprobs
    if wanted > limit:
        raise InvalidArgument(
            f"Requested {kind} logprobs of {wanted}, which is greater than max allowed: {limit}",
            name,
        )
    return value


def _bad_words(words: list[str], model: ServedModel) -> tuple[tuple[int, ...], ...]:
    """Each word's token ids as the output would spell it: at the start of the text and,
    when that is a different token sequence of the same length, after a space."""
    if any(not w.strip() for w in words):
        raise InvalidArgument("bad_words must not be empty.", "bad_words")
    sequences: list[tuple[int, ...]] = []
    for word in words:
        plain = tuple(model.tokenizer.encode(word.lstrip(), add_special_tokens=False))
        spaced = tuple(model.tokenizer.encode(" " + word.lstrip(), add_special_tokens=False))
        sequences.append(plain)
        if spaced and spaced[0] != plain[0] and len(spaced) == len(plain):
            sequences.append(spaced)
    return tuple(sequences)


def _output_settings(
    n: int,
    best_of: int,
    beam: bool,
    logprobs: bool,
    stopping: params_pb2.StoppingParams,
    output: params_pb2.OutputOptions,
    model: ServedModel,
) -> OutputSettings:
    stops = tuple(stopping.stop)
    if len(stops) > MAX_STOP_STRINGS:
        raise InvalidArgument(f"at most {MAX_STOP_STRINGS} stop strings are allowed.", "stop")
    if any(not s for s in stops):
        raise InvalidArgument("stop strings must not be empty.", "stop")
    skip_default = model.defaults.skip_special_tokens
    return OutputSettings(
        n=n,
        best_of=best_of,
        use_beam_search=beam,
        stop=stops,
        include_stop_str_in_output=stopping.include_stop_str_in_output,
        skip_special_tokens=(
            output.skip_special_tokens
            if output.HasField("skip_special_tokens")
            else (True if skip_default is None else skip_default)
        ),
        spaces_between_special_tokens=(
            output.spaces_between_special_tokens
            if output.HasField("spaces_between_special_tokens")
            else True
        ),
        echo=output.echo,
        logprobs=logprobs,
        return_tokens_as_token_ids=output.return_tokens_as_token_ids,
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
        "repetition_detection": stopping.HasField("repetition_detection"),
        "stream_interval": output.HasField("stream_interval") and output.stream_interval != 1,
    }
    for name, present in unsupported.items():
        if present:
            raise InvalidArgument(f"`{name}` is not supported by this server yet.", field=name)


def _check_thinking_budget(request) -> None:
    """A reasoning budget needs the model's reasoning end token, which comes with the
    reasoning parsers: until then any cap is refused (never silently ignored)."""
    if (
        request.HasField("thinking_token_budget")
        and request.thinking_token_budget != UNLIMITED_THINKING
    ):
        raise InvalidArgument(
            "`thinking_token_budget` is not supported by this server yet (it needs a "
            "reasoning parser); only -1 (unlimited) is accepted.",
            field="thinking_token_budget",
        )


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
