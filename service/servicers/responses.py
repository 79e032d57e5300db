"""ResponsesService: CreateResponse / CreateResponseStream, GetResponse, CancelResponse.

A translator over the chat pipeline, in process: each turn becomes a ChatRequest that
GenerateServicer.Chat / ChatStream run (template, tools, structured output, reasoning and
tool-call parsing are theirs), and the chat result becomes output items."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from protoserve.common.v1 import chat_pb2
from protoserve.generate.v1 import generate_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from protoserve.responses.v1 import responses_pb2_grpc
from service.errors import InvalidArgument, NotFound
from service.interceptors import request_id_of
from service.registry import Capability, ModelRegistry
from service.responses import conversation, output
from service.responses.chat_request import chat_request, responses_fields, wants_logprobs
from service.responses.events import ResponseEvents
from service.responses.store import ResponseStore, StoredResponse
from service.servicers.generate import GenerateServicer


@dataclass(frozen=True)
class _Turn:
    request: pb.CreateResponseRequest
    chat: generate_pb2.ChatRequest
    # The conversation up to this turn's input, without instructions.
    history: list[chat_pb2.ChatMessage]
    start: pb.Response

    @property
    def store(self) -> bool:
        return self.request.store if self.request.HasField("store") else True


class ResponsesServicer(responses_pb2_grpc.ResponsesServiceServicer):
    def __init__(self, registry: ModelRegistry, chat: GenerateServicer, store: ResponseStore):
        self._registry = registry
        self._chat = chat
        self._store = store

    async def CreateResponse(
        self, request: pb.CreateResponseRequest, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        turn = self._turn(request, context)
        with responses_fields(request):
            reply = await self._chat.Chat(turn.chat, context)
        [choice] = reply.choices
        logprobs = choice.logprobs if wants_logprobs(request) else []
        items = output.output_items(choice.message, logprobs, choice.finish)
        response = output.finished(turn.start, items, choice.finish, reply.usage)
        self._save(turn, response)
        return response

    async def CreateResponseStream(
        self, request: pb.CreateResponseRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ResponseEvent]:
        turn = self._turn(request, context)
        events = ResponseEvents(turn.start)
        started = False
        try:
            with responses_fields(request):
                async for message in self._chat.ChatStream(turn.chat, context):
                    if not started:  # the chat pipeline accepted the request
                        started = True
                        for event in events.started():
                            yield event
                    for event in events.feed(message):
                        yield event
        except Exception as exc:
            if started:
                self._save(turn, output.failed(turn.start, str(exc) or type(exc).__name__))
            raise
        closing, response = events.complete()
        for event in closing:
            yield event
        self._save(turn, response)

    async def GetResponse(
        self, request: pb.GetResponseRequest, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        return self._stored(request.response_id).response

    async def CancelResponse(
        self, request: pb.CancelResponseRequest, context: grpc.aio.ServicerContext
    ) -> pb.Response:
        self._stored(request.response_id)
        raise InvalidArgument(
            "Cannot cancel a synchronous response: only background responses can be "
            "cancelled, and this server does not run background responses.",
            "response_id",
        )

    # ----- shared ------------------------------------------------------------------
    def _turn(self, request: pb.CreateResponseRequest, context) -> _Turn:
        model = self._registry.get(request.model)
        model.require(Capability.GENERATE, "Responses")
        request_id = request_id_of(context, request.request_id)
        history = [*self._previous(request), *conversation.input_messages(request)]
        instructions = (
            [chat_pb2.ChatMessage(role="system", content=request.instructions)]
            if request.instructions
            else []
        )
        chat = chat_request(request, instructions + history, request_id)
        start = output.in_progress(request, output.response_id(request_id), model.name)
        return _Turn(request, chat, history, start)

    def _previous(self, request: pb.CreateResponseRequest) -> tuple[chat_pb2.ChatMessage, ...]:
        if not request.previous_response_id:
            return ()
        entry = self._store.get(request.previous_response_id)
        if entry is None:
            raise NotFound(
                f"previous_response_id: no stored response has the id "
                f"'{request.previous_response_id}' (responses made with store=false are not "
                f"kept, and the server keeps the {self._store.capacity} most recent).",
                "previous_response_id",
            )
        return entry.conversation

    def _stored(self, response_id: str) -> StoredResponse:
        entry = self._store.get(response_id)
        if entry is None:
            raise NotFound(
                f"No stored response has response_id '{response_id}' (responses made with "
                "store=false are not kept).",
                "response_id",
            )
        return entry

    def _save(self, turn: _Turn, response: pb.Response) -> None:
        if not turn.store:
            return
        answer = conversation.items_to_messages(response.output, field="output")
        self._store.put(StoredResponse(response, tuple(turn.history + answer)))
