"""/v1/responses onto ResponsesService: POST creates (JSON, or typed SSE events with
stream=true), GET /v1/responses/{id} reads a stored response, POST …/{id}/cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from protoserve.responses.v1 import responses_pb2 as pb
from rest_bridge import calls, convert, sse
from rest_bridge.body import parse_json
from rest_bridge.errors import bad_request
from rest_bridge.grpc_client import GrpcClient, metadata
from rest_bridge.responses_json import event_json, response_json
from rest_bridge.responses_request import ResponsesRequest, grpc_request

router = APIRouter()


@router.post("/v1/responses")
async def create_response(request: Request):
    req = await parse_json(request, ResponsesRequest)
    request_id = convert.request_id(request, req.request_id)
    message = grpc_request(req, request_id)
    client: GrpcClient = request.app.state.grpc
    if req.stream:
        call = client.responses.CreateResponseStream(
            message, metadata=metadata(request_id, request)
        )
        events = calls.stream(call)
        # The first event comes once the service has accepted the request, so a refused
        # request is a real 4xx here rather than an error event after a 200.
        first = await anext(events)
        payloads = _payloads(first, events)
        return StreamingResponse(sse.typed_event_stream(payloads), media_type=sse.MEDIA_TYPE)
    [response] = await calls.unary(
        request, [client.responses.CreateResponse(message, metadata=metadata(request_id, request))]
    )
    return JSONResponse(response_json(response))


async def _payloads(
    first: pb.ResponseEvent, rest: AsyncIterator[pb.ResponseEvent]
) -> AsyncIterator[dict]:
    yield event_json(first)
    async for event in rest:
        yield event_json(event)


@router.get("/v1/responses/{response_id}")
async def get_response(response_id: str, request: Request, stream: bool = False):
    if stream:
        raise bad_request(
            "stream=true replays background responses, which this server does not run.",
            "stream",
        )
    client: GrpcClient = request.app.state.grpc
    [response] = await calls.unary(
        request, [client.responses.GetResponse(pb.GetResponseRequest(response_id=response_id))]
    )
    return JSONResponse(response_json(response))


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(response_id: str, request: Request):
    client: GrpcClient = request.app.state.grpc
    cancel = pb.CancelResponseRequest(response_id=response_id)
    [response] = await calls.unary(request, [client.responses.CancelResponse(cancel)])
    return JSONResponse(response_json(response))
