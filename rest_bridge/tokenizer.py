"""POST /tokenize (text or chat form) and POST /detokenize onto TokenizerService."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from protoserve.tokenizer.v1 import tokenizer_pb2 as pb
from rest_bridge import calls
from rest_bridge.body import parse_json
from rest_bridge.chat_messages import (
    ChatMessageIn,
    ToolIn,
    message_proto,
    template_options,
    tool_proto,
)
from rest_bridge.errors import bad_request
from rest_bridge.grpc_client import GrpcClient
from rest_bridge.openapi import json_body
from rest_bridge.sampling import TokenId

router = APIRouter()


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessageIn] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[ToolIn] | None = None
    return_token_strs: bool = False


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    tokens: list[TokenId]


def _chat_input(req: TokenizeRequest) -> pb.ChatInput:
    template = template_options(
        add_generation_prompt=req.add_generation_prompt,
        continue_final_message=req.continue_final_message,
        chat_template=req.chat_template,
        chat_template_kwargs=req.chat_template_kwargs,
    )
    return pb.ChatInput(
        messages=[message_proto(m) for m in req.messages or []],
        template=template,
        tools=[tool_proto(t) for t in req.tools or []],
    )


@router.post("/tokenize", openapi_extra=json_body(TokenizeRequest))
async def tokenize(request: Request) -> dict:
    req = await parse_json(request, TokenizeRequest)
    message = pb.TokenizeRequest(
        model=req.model or "",
        add_special_tokens=req.add_special_tokens,
        return_token_strs=req.return_token_strs,
    )
    if req.messages is not None:
        message.chat.CopyFrom(_chat_input(req))
    elif req.prompt is not None:
        message.text = req.prompt
    else:
        raise bad_request("Either `prompt` or `messages` is required.", "prompt")
    client: GrpcClient = request.app.state.grpc
    [reply] = await calls.unary(request, [client.tokenizer.Tokenize(message)])
    return {
        "count": reply.count,
        "max_model_len": reply.max_model_len,
        "tokens": list(reply.tokens),
        "token_strs": list(reply.token_strs) if req.return_token_strs else None,
    }


@router.post("/detokenize", openapi_extra=json_body(DetokenizeRequest))
async def detokenize(request: Request) -> dict:
    req = await parse_json(request, DetokenizeRequest)
    client: GrpcClient = request.app.state.grpc
    message = pb.DetokenizeRequest(model=req.model or "", tokens=req.tokens)
    [reply] = await calls.unary(request, [client.tokenizer.Detokenize(message)])
    return {"prompt": reply.text}
