"""TokenizerService: Tokenize, Detokenize, RenderChat."""

from __future__ import annotations

import grpc

from protoserve.tokenizer.v1 import tokenizer_pb2 as pb
from protoserve.tokenizer.v1 import tokenizer_pb2_grpc
from service.chat import render_prompt
from service.errors import InvalidArgument
from service.registry import ModelRegistry, ServedModel


class TokenizerServicer(tokenizer_pb2_grpc.TokenizerServiceServicer):
    def __init__(self, registry: ModelRegistry):
        self._registry = registry

    async def Tokenize(
        self, request: pb.TokenizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TokenizeResponse:
        model = self._registry.get(request.model)
        if request.WhichOneof("input") == "chat":
            text = _render(model, request.chat)
            default_special = False
        else:
            text = request.text
            default_special = True
        add_special = (
            request.add_special_tokens
            if request.HasField("add_special_tokens")
            else default_special
        )
        tokens = model.tokenizer.encode(text, add_special_tokens=add_special)
        response = pb.TokenizeResponse(
            tokens=tokens, count=len(tokens), max_model_len=model.max_model_len
        )
        if request.return_token_strs:
            response.token_strs.extend(model.tokenizer.token_strings(tokens))
        return response

    async def Detokenize(
        self, request: pb.DetokenizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.DetokenizeResponse:
        model = self._registry.get(request.model)
        bad = [t for t in request.tokens if t >= model.vocab_size]
        if bad:
            raise InvalidArgument(
                f"Token id {bad[0]} is out of vocabulary (size {model.vocab_size}).", "tokens"
            )
        text = model.tokenizer.decode(list(request.tokens), request.skip_special_tokens)
        return pb.DetokenizeResponse(text=text)

    async def RenderChat(
        self, request: pb.RenderChatRequest, context: grpc.aio.ServicerContext
    ) -> pb.RenderChatResponse:
        model = self._registry.get(request.model)
        text = _render(model, request.chat)
        tokens = model.tokenizer.encode(text, add_special_tokens=request.add_special_tokens)
        return pb.RenderChatResponse(prompt=text, token_ids=tokens)


def _render(model: ServedModel, chat: pb.ChatInput) -> str:
    return render_prompt(list(chat.messages), chat.template, list(chat.tools), model.chat)
