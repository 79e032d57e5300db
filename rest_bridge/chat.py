"""POST /v1/chat/completions onto GenerateService.Chat / ChatStream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from protoserve.common.v1 import chat_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from rest_bridge import calls, convert, sampling, sse
from rest_bridge import logprobs as logprobs_json
from rest_bridge.body import parse_json
from rest_bridge.chat_messages import (
    ChatMessageIn,
    ToolIn,
    message_proto,
    template_options,
    tool_choice_proto,
    tool_proto,
)
from rest_bridge.errors import bad_request
from rest_bridge.grpc_client import GrpcClient, metadata
from rest_bridge.openapi import json_body
from rest_bridge.sampling import Int32, SamplingFields

router = APIRouter()


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessageIn]
    max_tokens: Int32 | None = None
    max_completion_tokens: Int32 | None = None
    logprobs: bool | None = False
    top_logprobs: Int32 | None = 0
    tools: list[ToolIn] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = True
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    documents: list[dict[str, str]] | None = None
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    include_reasoning: bool = True
    return_prompt_text: bool | None = None
    user: str | None = None

    def logprobs_count(self) -> int | None:
        top = self.top_logprobs or 0
        if not self.logprobs:
            if top:
                raise bad_request(
                    "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs"
                )
            return None
        return top


def _template_options(req: ChatCompletionRequest) -> chat_pb2.ChatTemplateOptions:
    return template_options(
        add_generation_prompt=req.add_generation_prompt,
        continue_final_message=req.continue_final_message,
        chat_template=req.chat_template,
        chat_template_kwargs=req.chat_template_kwargs,
        documents=req.documents,
        reasoning_effort=req.reasoning_effort,
    )


def _grpc_request(req: ChatCompletionRequest, request_id: str) -> pb.ChatRequest:
    if req.tools is not None and not req.tools:
        raise bad_request("`tools` must not be an empty list.", "tools")
    max_tokens = (
        req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    )
    output = sampling.output_options(req, req.logprobs_count())
    output.return_prompt_text = bool(req.return_prompt_text)
    return pb.ChatRequest(
        model=req.model or "",
        messages=[message_proto(m) for m in req.messages],
        sampling=sampling.sampling_params(req),
        penalties=sampling.penalty_params(req),
        stopping=sampling.stopping_params(req, max_tokens),
        output=output,
        prompt_options=sampling.prompt_options(req, req.add_special_tokens),
        structured_output=sampling.structured_output(req),
        template=_template_options(req),
        tools=[tool_proto(t) for t in req.tools or []],
        tool_choice=tool_choice_proto(req.tool_choice),
        parallel_tool_calls=req.parallel_tool_calls,
        include_reasoning=req.include_reasoning,
        thinking_token_budget=req.thinking_token_budget,
        priority=req.priority,
        request_id=request_id,
        cache_salt=req.cache_salt or "",
    )


@router.post("/v1/chat/completions", openapi_extra=json_body(ChatCompletionRequest))
async def create_chat_completion(request: Request):
    req = await parse_json(request, ChatCompletionRequest)
    req.check_stream_options()
    if req.stream:
        req.check_streamable()
    req.check_extra_fields()
    request_id = convert.request_id(request, req.request_id)
    message = _grpc_request(req, request_id)
    client: GrpcClient = request.app.state.grpc
    if req.stream:
        rpc = client.generate.ChatStream(message, metadata=metadata(request_id, request))
        call = calls.stream(await calls.opened(rpc))
        chunks = _stream_chunks(req, f"chatcmpl-{request_id}", call)
        return StreamingResponse(sse.event_stream(chunks), media_type=sse.MEDIA_TYPE)
    [response] = await calls.unary(
        request, [client.generate.Chat(message, metadata=metadata(request_id, request))]
    )
    return JSONResponse(_response(req, f"chatcmpl-{request_id}", response))


def _message_json(message: chat_pb2.ChatMessage) -> dict:
    out: dict[str, Any] = {
        "role": message.role,
        "content": message.content if message.HasField("content") else None,
        "refusal": None,
        "audio": None,
    }
    if message.HasField("reasoning"):
        out["reasoning"] = message.reasoning
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out


def _response(req: ChatCompletionRequest, response_id: str, response: pb.ChatResponse) -> dict:
    choices = []
    for choice in response.choices:
        item = {
            "index": choice.index,
            "message": _message_json(choice.message),
            "logprobs": logprobs_json.chat_logprobs(choice.logprobs) if req.logprobs else None,
            "finish_reason": convert.finish_reason(choice.finish),
            "stop_reason": convert.stop_reason(choice.finish),
        }
        if req.return_token_ids:
            item["token_ids"] = list(choice.token_ids)
        choices.append(item)
    body = {
        "id": response_id,
        "object": "chat.completion",
        "created": convert.now(),
        "model": response.model,
        "system_fingerprint": convert.system_fingerprint(),
        "service_tier": None,
        "choices": choices,
        "usage": convert.usage(response.usage),
    }
    if req.prompt_logprobs is not None:
        body["prompt_logprobs"] = logprobs_json.prompt_logprobs(response.prompt.prompt_logprobs)
    if req.return_token_ids:
        body["prompt_token_ids"] = list(response.prompt.token_ids)
    if req.return_prompt_text:
        body["prompt_text"] = response.prompt.text
    return body


async def _stream_chunks(
    req: ChatCompletionRequest, response_id: str, stream: AsyncIterator[pb.ChatStreamResponse]
) -> AsyncIterator[dict]:
    created, model = convert.now(), ""

    def chunk(choices: list[dict]) -> dict:
        return {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }

    async for message in stream:
        model = message.model
        event = message.WhichOneof("event")
        if event == "end":
            if req.include_usage:
                yield {
                    **chunk([]),
                    "usage": convert.usage(message.end.usage),
                    "system_fingerprint": convert.system_fingerprint(),
                }
            continue
        if event != "delta":
            continue
        delta = message.delta
        if delta.role:
            yield chunk([_choice_delta(delta.index, {"role": delta.role, "content": ""})])
        finished = delta.HasField("finish")
        logprobs = logprobs_json.chat_logprobs(delta.logprobs) if req.logprobs else None
        pieces = _delta_pieces(delta)
        if not pieces and (finished or (logprobs and delta.logprobs)):
            pieces = [{}]
        for position, piece in enumerate(pieces):
            if position < len(pieces) - 1:
                yield chunk([_choice_delta(delta.index, piece)])
                continue
            finish = delta.finish if finished else None
            out = chunk([_choice_delta(delta.index, piece, finish, logprobs)])
            if delta.HasField("usage"):
                out["usage"] = convert.usage(delta.usage)
            yield out


def _delta_pieces(delta: pb.ChatDelta) -> list[dict]:
    """One chunk's delta per piece, in the order OpenAI streams them: reasoning, content,
    then each tool call: its id, type and name first (arguments ""), its arguments next."""
    pieces: list[dict] = []
    if delta.reasoning:
        pieces.append({"reasoning": delta.reasoning})
    if delta.content:
        pieces.append({"content": delta.content})
    for call in delta.tool_calls:
        if call.id:
            function = {"name": call.name, "arguments": ""}
            header = {"index": call.index, "id": call.id, "type": "function", "function": function}
            pieces.append({"tool_calls": [header]})
        if call.arguments:
            fragment = {"index": call.index, "function": {"arguments": call.arguments}}
            pieces.append({"tool_calls": [fragment]})
    return pieces


def _choice_delta(index: int, delta: dict, finish=None, logprobs: dict | None = None) -> dict:
    return {
        "index": index,
        "delta": delta,
        "logprobs": logprobs,
        "finish_reason": convert.finish_reason(finish) if finish is not None else None,
        "stop_reason": convert.stop_reason(finish) if finish is not None else None,
    }
