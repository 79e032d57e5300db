"""ResponsesServicer over a fake chat pipeline: conversations chained through the store,
store=false, GetResponse / CancelResponse, streams stored at their end (failed ones too)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from protoserve.common.v1 import chat_pb2, output_pb2
from protoserve.generate.v1 import generate_pb2 as gen
from protoserve.responses.v1 import responses_pb2 as pb
from service.errors import InvalidArgument, NotFound
from service.responses.store import ResponseStore
from service.servicers.responses import ResponsesServicer

STOP = output_pb2.FinishInfo(reason=output_pb2.FINISH_REASON_STOP)
CONTEXT = SimpleNamespace(invocation_metadata=lambda: ())


class FakeChat:
    """Answers turn N with "answer N"; prompt_tokens counts the messages it was given."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.requests: list[gen.ChatRequest] = []
        self.fail_after = fail_after

    def _answer(self, request: gen.ChatRequest) -> str:
        self.requests.append(request)
        return f"answer {len(self.requests)}"

    async def Chat(self, request: gen.ChatRequest, context) -> gen.ChatResponse:
        message = chat_pb2.ChatMessage(role="assistant", content=self._answer(request))
        usage = output_pb2.Usage(prompt_tokens=len(request.messages), completion_tokens=2)
        choice = gen.ChatChoice(message=message, finish=STOP)
        return gen.ChatResponse(model="demo", choices=[choice], usage=usage)

    async def ChatStream(self, request: gen.ChatRequest, context):
        text = self._answer(request)
        yield gen.ChatStreamResponse(prompt=output_pb2.PromptInfo())
        for index, word in enumerate(text.split(" ")):
            if self.fail_after is not None and index >= self.fail_after:
                raise RuntimeError("engine fell over")
            yield gen.ChatStreamResponse(delta=gen.ChatDelta(content=word + " "))
        yield gen.ChatStreamResponse(delta=gen.ChatDelta(finish=STOP))
        yield gen.ChatStreamResponse(end=gen.StreamEnd(usage=output_pb2.Usage(prompt_tokens=1)))


def _servicer(chat: FakeChat, capacity: int = 8) -> ResponsesServicer:
    model = SimpleNamespace(name="demo", require=lambda capability, api: None)
    registry = SimpleNamespace(get=lambda name: model)
    return ResponsesServicer(registry, chat, ResponseStore(capacity))


def _texts(request: gen.ChatRequest) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in request.messages]


async def test_previous_response_id_chains_three_turns_without_old_instructions() -> None:
    chat = FakeChat()
    servicer = _servicer(chat)
    first = await servicer.CreateResponse(
        pb.CreateResponseRequest(text="one", instructions="Be terse."), CONTEXT
    )
    second = await servicer.CreateResponse(
        pb.CreateResponseRequest(text="two", previous_response_id=first.id), CONTEXT
    )
    third = await servicer.CreateResponse(
        pb.CreateResponseRequest(
            text="three", previous_response_id=second.id, instructions="Be kind."
        ),
        CONTEXT,
    )
    assert _texts(chat.requests[0]) == [("system", "Be terse."), ("user", "one")]
    assert _texts(chat.requests[2]) == [
        ("system", "Be kind."),
        ("user", "one"),
        ("assistant", "answer 1"),
        ("user", "two"),
        ("assistant", "answer 2"),
        ("user", "three"),
    ]
    assert [r.usage.prompt_tokens for r in (first, second, third)] == [2, 3, 6]
    assert third.output[0].message.content[0].output_text == "answer 3"
    assert await servicer.GetResponse(pb.GetResponseRequest(response_id=third.id), CONTEXT) == third


async def test_store_false_is_not_kept_and_unknown_ids_are_not_found() -> None:
    chat = FakeChat()
    servicer = _servicer(chat)
    reply = await servicer.CreateResponse(pb.CreateResponseRequest(text="x", store=False), CONTEXT)
    with pytest.raises(NotFound) as error:
        await servicer.GetResponse(pb.GetResponseRequest(response_id=reply.id), CONTEXT)
    assert error.value.field == "response_id"
    with pytest.raises(NotFound) as error:
        follow_up = pb.CreateResponseRequest(text="y", previous_response_id=reply.id)
        await servicer.CreateResponse(follow_up, CONTEXT)
    assert error.value.field == "previous_response_id" and reply.id in error.value.message
    assert len(chat.requests) == 1  # refused before the chat pipeline ran


async def test_the_store_is_bounded() -> None:
    servicer = _servicer(FakeChat(), capacity=1)
    old = await servicer.CreateResponse(pb.CreateResponseRequest(text="a"), CONTEXT)
    new = await servicer.CreateResponse(pb.CreateResponseRequest(text="b"), CONTEXT)
    assert await servicer.GetResponse(pb.GetResponseRequest(response_id=new.id), CONTEXT) == new
    with pytest.raises(NotFound):
        await servicer.GetResponse(pb.GetResponseRequest(response_id=old.id), CONTEXT)


async def test_cancel_refuses_synchronous_responses() -> None:
    servicer = _servicer(FakeChat())
    reply = await servicer.CreateResponse(pb.CreateResponseRequest(text="a"), CONTEXT)
    with pytest.raises(InvalidArgument, match="synchronous"):
        await servicer.CancelResponse(pb.CancelResponseRequest(response_id=reply.id), CONTEXT)
    with pytest.raises(NotFound):
        await servicer.CancelResponse(pb.CancelResponseRequest(response_id="resp_x"), CONTEXT)


async def test_a_stream_is_stored_when_it_ends_and_chains_like_unary() -> None:
    chat = FakeChat()
    servicer = _servicer(chat)
    events = [
        e async for e in servicer.CreateResponseStream(pb.CreateResponseRequest(text="a"), CONTEXT)
    ]
    final = events[-1].completed
    assert final.output[0].message.content[0].output_text == "answer 1 "
    stored = await servicer.GetResponse(pb.GetResponseRequest(response_id=final.id), CONTEXT)
    assert stored == final
    await servicer.CreateResponse(
        pb.CreateResponseRequest(text="b", previous_response_id=final.id), CONTEXT
    )
    assert _texts(chat.requests[1])[1] == ("assistant", "answer 1 ")


async def test_a_stream_that_fails_is_stored_as_failed() -> None:
    servicer = _servicer(FakeChat(fail_after=1))
    request = pb.CreateResponseRequest(text="a", request_id="resp_boom")
    events = []
    with pytest.raises(RuntimeError):
        async for event in servicer.CreateResponseStream(request, CONTEXT):
            events.append(event)
    assert [e.WhichOneof("event") for e in events][:2] == ["created", "in_progress"]
    stored = await servicer.GetResponse(pb.GetResponseRequest(response_id="resp_boom"), CONTEXT)
    assert stored.status == pb.RESPONSE_STATUS_FAILED
    assert stored.error.code == "server_error" and "fell over" in stored.error.message


async def test_a_refused_stream_starts_no_events() -> None:
    chat = FakeChat()
    request = pb.CreateResponseRequest(text="a", max_output_tokens=0)
    with pytest.raises(InvalidArgument) as error:
        async for _ in _servicer(chat).CreateResponseStream(request, CONTEXT):
            pass
    assert error.value.field == "max_output_tokens" and not chat.requests


def test_the_store_size_flag_reaches_the_service_config() -> None:
    from service.cli import build_parser
    from service.cli.flags import resolve
    from service.cli.launch import service_config

    def config(argv: list[str], env: dict[str, str]):
        args = vars(build_parser().parse_args(["grpc", "m", *argv]))
        args.pop("command")
        return service_config(resolve("grpc", args, env=env))

    assert config([], {}).max_stored_responses == 1024
    assert config(["--max-stored-responses", "3"], {}).max_stored_responses == 3
    assert config([], {"PROTOSERVE_MAX_STORED_RESPONSES": "0"}).max_stored_responses == 0
