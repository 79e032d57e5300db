"""The sampling, stopping and output fields that completions and chat share (the
OpenAI fields plus vLLM's extras), and their translation to protobuf sub-messages.

Ranges are checked by the service, so gRPC and REST callers get the same errors; here
only what protobuf cannot carry (types, integer widths, non-integer logit_bias keys) is
rejected."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from protoserve.common.v1 import params_pb2
from rest_bridge.errors import bad_request

log = structlog.get_logger(__name__)

Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
TokenId = Annotated[int, Field(ge=0, le=2**32 - 1)]
# No "4", 2.0 or true: these fields are refused unless they are integers.
StrictInt32 = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
# A non-optional `x: Int32 = Field(default=0, ge=0)` keeps Int32's lower bound: use this.
NonNegativeInt32 = Annotated[Int32, Field(ge=0)]

REMOVED_GUIDED_FIELDS = (
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "guided_decoding_backend",
    "guided_whitespace_pattern",
)
# Plugin arguments: this server has no plugins to hand them to, so they are refused.
UNFORWARDED_FIELDS = ("vllm_xargs", "extra_args")


class StreamOptions(BaseModel):
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class RepetitionDetectionIn(BaseModel):
    min_pattern_size: UInt32 = 0
    max_pattern_size: UInt32 = 0
    min_count: UInt32 = 0


class SamplingFields(BaseModel):
    """Fields of /v1/completions and /v1/chat/completions with the same meaning."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: Int32 | None = None
    min_p: float | None = None
    n: Int32 | None = 1
    best_of: StrictInt32 | None = None
    seed: Int64 | None = None
    use_beam_search: bool = False
    length_penalty: float | None = None
    presence_penalty: float | None = None  # unset: the model default, else 0
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    allowed_token_ids: list[TokenId] | None = None
    bad_words: list[str] | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[TokenId] | None = None
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: Int32 = 0
    skip_special_tokens: bool | None = None  # unset: the model default, else true
    spaces_between_special_tokens: bool | None = None
    truncate_prompt_tokens: Int32 | None = None
    truncation_side: Literal["left", "right"] | None = None
    prompt_logprobs: Int32 | None = None
    logprob_token_ids: list[TokenId] | None = None
    return_tokens_as_token_ids: bool | None = None
    return_token_ids: bool | None = None
    echo: bool = False
    priority: Int64 = 0
    request_id: str | None = None
    cache_salt: str | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = None
    structured_outputs: dict[str, Any] | None = None
    stream_interval: Int32 | None = None
    repetition_detection: RepetitionDetectionIn | None = None
    thinking_token_budget: StrictInt32 | None = None

    def check_stream_options(self) -> None:
        if self.stream_options is not None and not self.stream:
            raise bad_request(
                "Stream options can only be defined when `stream=True`.", "stream_options"
            )

    def check_streamable(self) -> None:
        """What streaming cannot carry (checked before the stream starts: a real 400)."""
        if self.prompt_logprobs is not None:
            raise bad_request(
                "`prompt_logprobs` is not supported with streaming.", "prompt_logprobs"
            )
        if self.best_of is not None and self.best_of > (self.n or 1) and not self.use_beam_search:
            raise bad_request("best_of must equal n when streaming.", "best_of")

    def check_extra_fields(self) -> None:
        """Fields outside the model: the removed guided_* are ignored with a warning (as
        vLLM), the plugin arguments refused (nothing here could use them)."""
        extra = self.model_extra or {}
        for name in REMOVED_GUIDED_FIELDS:
            if name in extra:
                log.warning("removed field ignored; use structured_outputs", field=name)
        for name in UNFORWARDED_FIELDS:
            if extra.get(name):
                raise bad_request(f"`{name}` is not supported: this server has no plugins.", name)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def sampling_params(req: SamplingFields) -> params_pb2.SamplingParams:
    return params_pb2.SamplingParams(
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        min_p=req.min_p,
        seed=req.seed,
        n=req.n,
        use_beam_search=req.use_beam_search,
        length_penalty=req.length_penalty,
        best_of=req.best_of,
    )


def penalty_params(req: SamplingFields) -> params_pb2.PenaltyParams:
    if req.allowed_token_ids is not None and not req.allowed_token_ids:
        raise bad_request("allowed_token_ids must not be empty.", "allowed_token_ids")
    return params_pb2.PenaltyParams(
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        repetition_penalty=req.repetition_penalty,
        logit_bias=logit_bias_map(req.logit_bias),
        allowed_token_ids=req.allowed_token_ids,
        bad_words=req.bad_words,
    )


def logit_bias_map(bias: dict[str, float] | None) -> dict[int, float]:
    out = {}
    for key, value in (bias or {}).items():
        try:
            token_id = int(key)
        except ValueError:
            raise bad_request(
                f"logit_bias keys must be token ids, got {key!r}.", "logit_bias"
            ) from None
        if not 0 <= token_id < 2**32:
            raise bad_request(f"logit_bias token id {token_id} is out of range.", "logit_bias")
        out[token_id] = value
    return out


def stop_strings(stop: str | list[str] | None) -> list[str]:
    """The OpenAI `stop` field (one string, a list, or nothing) as a list."""
    return [stop] if isinstance(stop, str) else list(stop or [])


def stopping_params(req: SamplingFields, max_tokens: int | None) -> params_pb2.StoppingParams:
    stop = stop_strings(req.stop)
    if max_tokens is not None and not -(2**31) <= max_tokens < 2**31:
        raise bad_request(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
    return params_pb2.StoppingParams(
        max_tokens=max_tokens,
        min_tokens=req.min_tokens,
        stop=stop,
        stop_token_ids=req.stop_token_ids,
        ignore_eos=req.ignore_eos,
        include_stop_str_in_output=req.include_stop_str_in_output,
        repetition_detection=(
            params_pb2.RepetitionDetection(**req.repetition_detection.model_dump())
            if req.repetition_detection is not None
            else None
        ),  # the service refuses it for now, naming the field
    )


def output_options(req: SamplingFields, logprobs: int | None) -> params_pb2.OutputOptions:
    return params_pb2.OutputOptions(
        logprobs=logprobs,
        prompt_logprobs=req.prompt_logprobs,
        logprob_token_ids=req.logprob_token_ids,
        skip_special_tokens=req.skip_special_tokens,
        spaces_between_special_tokens=req.spaces_between_special_tokens,
        return_tokens_as_token_ids=bool(req.return_tokens_as_token_ids),
        echo=req.echo,
        return_prompt_token_ids=bool(req.return_token_ids),
        continuous_usage_stats=bool(
            req.stream_options and req.stream_options.continuous_usage_stats
        ),
        stream_interval=req.stream_interval,
    )


def prompt_options(req: SamplingFields, add_special_tokens: bool) -> params_pb2.PromptOptions:
    side = {
        "left": params_pb2.TRUNCATION_SIDE_LEFT,
        "right": params_pb2.TRUNCATION_SIDE_RIGHT,
        None: params_pb2.TRUNCATION_SIDE_UNSPECIFIED,
    }[req.truncation_side]
    return params_pb2.PromptOptions(
        add_special_tokens=add_special_tokens,
        truncate_prompt_tokens=req.truncate_prompt_tokens,
        truncation_side=side,
    )


def structured_output(req: SamplingFields) -> params_pb2.StructuredOutput | None:
    """response_format and structured_outputs as one constraint (response_format
    overrides the matching key). The old guided_* fields are ignored (check_extra_fields)."""
    if req.structured_outputs is None and req.response_format is None:
        return None
    spec = dict(req.structured_outputs or {})
    if "backend" in spec or "_backend" in spec:
        raise bad_request(
            "The structured outputs backend is chosen by the server; a per-request "
            "`backend` is not supported.",
            "structured_outputs.backend",
        )
    spec.update(_response_format(req.response_format or {}))
    if req.structured_outputs is None and not spec:
        return None  # response_format {type: "text"}: no constraint
    return structured_constraint(spec)


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    kind = fmt.get("type")
    if kind in (None, "text"):
        return {}
    if kind == "json_object":
        return {"json_object": True}
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema is None:
            raise bad_request(
                "response_format json_schema needs `json_schema.schema`.", "response_format"
            )
        return {"json": schema}
    if kind == "structural_tag":
        if not isinstance(fmt.get("structures"), list) or not isinstance(fmt.get("triggers"), list):
            raise bad_request(
                "response_format structural_tag needs `structures` and `triggers` lists.",
                "response_format",
            )
        return {"structural_tag": json.dumps(fmt)}
    raise bad_request(f"response_format type {kind!r} is not supported.", "response_format")


def structured_constraint(spec: dict[str, Any]) -> params_pb2.StructuredOutput:
    kinds = [
        k
        for k in ("choice", "regex", "json", "grammar", "json_object", "structural_tag")
        if spec.get(k) not in (None, False)
    ]
    if len(kinds) > 1:
        raise bad_request(
            "You can only use one kind of structured outputs constraint but got "
            f"{len(kinds)}: {kinds}",
            "structured_outputs",
        )
    if not kinds:
        raise bad_request(
            "You must use one kind of structured outputs constraint but none was given "
            "(json, regex, choice, grammar, json_object or structural_tag).",
            "structured_outputs",
        )
    out = params_pb2.StructuredOutput(
        disable_any_whitespace=bool(spec.get("disable_any_whitespace")),
        disable_additional_properties=bool(spec.get("disable_additional_properties")),
        whitespace_pattern=spec.get("whitespace_pattern") or "",
    )
    kind, value = kinds[0], spec[kinds[0]]
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise bad_request(
                "choice must be a non-empty list of strings.", "structured_outputs.choice"
            )
        out.choice.choices.extend(str(v) for v in value)
    elif kind == "json":
        out.json_schema = value if isinstance(value, str) else json.dumps(value)
    elif kind == "json_object":
        out.json_object = True
    elif kind == "structural_tag":
        out.structural_tag = value if isinstance(value, str) else json.dumps(value)
    else:
        setattr(out, kind, str(value))
    return out
