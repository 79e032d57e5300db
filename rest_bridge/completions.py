"""POST /v1/completions onto GenerateService.Generate / GenerateStream (one call per
prompt; choices are numbered prompt_index * n + i)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from protoserve.common.v1 import output_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from rest_bridge import calls, convert, sampling, sse
from rest_bridge import logprobs as logprobs_json
from rest_bridge.body import parse_json
from rest_bridge.errors import bad_request
from rest_bridge.grpc_client import GrpcClient, metadata
from rest_bridge.openapi import json_body
from rest_bridge.sampling import Int32, SamplingFields, TokenId

MAX_PROMPTS = 1024

router = APIRouter()


class CompletionRequest(SamplingFields):
    prompt: str | list[TokenId] | list[list[TokenId]] | list[str]
    max_tokens: Int32 | None = 16
    logprobs: Int32 | None = None
    suffix: str | None = None
    add_special_tokens: bool = True
    user: str | None = None


def _prompts(req: CompletionRequest) -> list[str | list[int]]:
    prompt = req.prompt
    if isinstance(prompt, str):
        prompts: list = [prompt]
    elif prompt and isinstance(prompt[0], int):
        prompts = [prompt]
    else:
        prompts = list(prompt)
    if not prompts:
        raise bad_request("The prompt must not be empty.", "prompt")
    if len(prompts) > MAX_PROMPTS:
        raise bad_request(f"At most {MAX_PROMPTS} prompts per request.", "prompt")
    return prompts


def _check(req: CompletionRequest) -> None:
    """What vLLM refuses with a 400 before streaming starts."""
    req.check_stream_options()
    if req.stream:
        req.check_streamable()
        if req.use_beam_search:
            raise bad_request(
                "use_beam_search is not supported with streaming completions.", "use_beam_search"
            )


def _output_options(req: CompletionRequest):
    output = sampling.output_options(req, req.logprobs)
    if req.echo and req.logprobs is not None and req.prompt_logprobs is None:
        output.prompt_logprobs = req.logprobs  # echo with logprobs covers the prompt too
    return output


def _grpc_request(req: CompletionRequest, prompt: str | list[int], request_id: str):
    message = pb.GenerateRequest(
        model=req.model or "",
        sampling=sampling.sampling_params(req),
        penalties=sampling.penalty_params(req),
        stopping=sampling.stopping_params(req, 16 if req.max_tokens is None else req.max_tokens),
        output=_output_options(req),
        prompt_options=sampling.prompt_options(req, req.add_special_tokens),
        structured_output=sampling.structured_output(req),
        suffix=req.suffix or "",
        priority=req.priority,
        request_id=request_id,
        cache_salt=req.cache_salt or "",
        thinking_token_budget=req.thinking_token_budget,
    )
    if isinstance(prompt, str):
        message.text = prompt
    else:
        message.token_ids.ids.extend(prompt)
    return message


@router.post("/v1/completions", openapi_extra=json_body(CompletionRequest))
async def create_completion(request: Request):
    req = await parse_json(request, CompletionRequest)
    _check(req)
    req.check_extra_fields()
    base_id = convert.request_id(request, req.request_id)
    prompts = _prompts(req)
    ids = [base_id if len(prompts) == 1 else f"{base_id}-{i}" for i in range(len(prompts))]
    messages = [_grpc_request(req, p, i) for p, i in zip(prompts, ids, strict=True)]
    client: GrpcClient = request.app.state.grpc
    if req.stream:
        started = await calls.opened_all(
            [
                client.generate.GenerateStream(m, metadata=metadata(i, request))
                for m, i in zip(messages, ids, strict=True)
            ]
        )
        calls_ = [calls.stream(c) for c in started]
        chunks = _stream_chunks(req, f"cmpl-{base_id}", calls_)
        return StreamingResponse(sse.event_stream(chunks), media_type=sse.MEDIA_TYPE)
    responses = await calls.unary(
        request,
        [
            client.generate.Generate(m, metadata=metadata(i, request))
            for m, i in zip(messages, ids, strict=True)
        ],
    )
    return JSONResponse(_response(req, f"cmpl-{base_id}", responses))


def _choice_index(req: CompletionRequest, prompt_index: int, index: int) -> int:
    return prompt_index * (req.n or 1) + index


def _response(req: CompletionRequest, response_id: str, responses: list[pb.GenerateResponse]):
    choices, totals = [], output_pb2.Usage()
    for p, response in enumerate(responses):
        convert.add_usage(totals, response.usage)
        for choice in response.choices:
            item = {
                "index": _choice_index(req, p, choice.index),
                "text": choice.text,
                "logprobs": _logprobs(req, response.prompt, choice.logprobs, echoed=True),
                "finish_reason": convert.finish_reason(choice.finish),
                "stop_reason": convert.stop_reason(choice.finish),
            }
            if req.prompt_logprobs is not None:
                item["prompt_logprobs"] = logprobs_json.prompt_logprobs(
                    response.prompt.prompt_logprobs
                )
            if req.return_token_ids:
                item["prompt_token_ids"] = list(response.prompt.token_ids)
                item["token_ids"] = list(choice.token_ids)
            choices.append(item)
    return {
        "id": response_id,
        "object": "text_completion",
        "created": convert.now(),
        "model": responses[0].model,
        "system_fingerprint": convert.system_fingerprint(),
        "choices": choices,
        "usage": convert.usage(totals),
    }


def _logprobs(req: CompletionRequest, prompt, entries, echoed: bool, text_offset: int = 0):
    """The choice's logprobs; with echo, the prompt's entries come first."""
    if req.logprobs is None:
        return None
    prompt_entries = list(prompt.prompt_logprobs) if req.echo and echoed else []
    return logprobs_json.completion_logprobs(
        [*prompt_entries, *entries], text_offset, len(prompt_entries)
    )


async def _stream_chunks(
    req: CompletionRequest, response_id: str, streams: list[AsyncIterator]
) -> AsyncIterator[dict]:
    chunks = _ChunkMaker(req, response_id)
    totals = output_pb2.Usage()
    async for p, message in calls.fan_in(streams):
        chunks.model = message.model
        event = message.WhichOneof("event")
        if event == "prompt":
            chunks.prompts[p] = message.prompt
        elif event == "end":
            convert.add_usage(totals, message.end.usage)
        elif (
            message.delta.text
            or message.delta.HasField("finish")
            or message.delta.logprobs
            or req.return_token_ids
        ):
            yield chunks.choice_chunk(p, message.delta)
    if req.include_usage:
        yield chunks.usage_chunk(totals)


class _ChunkMaker:
    def __init__(self, req: CompletionRequest, response_id: str):
        self.req, self.response_id, self.created = req, response_id, convert.now()
        self.model = ""
        self.prompts: dict[int, object] = {}  # PromptInfo by prompt index
        self._started: set[int] = set()
        self._offsets: dict[int, int] = {}  # text_offset of each choice's next token

    def _chunk(self, choices: list[dict]) -> dict:
        return {
            "id": self.response_id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def choice_chunk(self, p: int, delta: pb.CompletionDelta) -> dict:
        finished = delta.HasField("finish")
        index = _choice_index(self.req, p, delta.index)
        logprobs = _logprobs(
            self.req, self.prompts.get(p), delta.logprobs, index not in self._started,
            self._offsets.get(index, 0),
        )  # fmt: skip
        if logprobs is not None:
            last = logprobs["text_offset"][-1:] or [self._offsets.get(index, 0)]
            self._offsets[index] = last[0] + len((logprobs["tokens"] or [""])[-1])
        choice = {
            "index": index,
            "text": delta.text,
            "logprobs": logprobs,
            "finish_reason": convert.finish_reason(delta.finish) if finished else None,
            "stop_reason": convert.stop_reason(delta.finish) if finished else None,
        }
        if self.req.return_token_ids:
            choice["token_ids"] = list(delta.token_ids)
            if index not in self._started:
                prompt = self.prompts.get(p)
                choice["prompt_token_ids"] = list(prompt.token_ids) if prompt else []
        self._started.add(index)
        chunk = self._chunk([choice])
        if delta.HasField("usage"):
            chunk["usage"] = convert.usage(delta.usage)
        return chunk

    def usage_chunk(self, totals: output_pb2.Usage) -> dict:
        return {
            **self._chunk([]),
            "usage": convert.usage(totals),
            "system_fingerprint": convert.system_fingerprint(),
        }
