"""The bridge passes x-request-id and the client's x-session-id (what Envoy's ring-hash
pool hashes on) to the service as gRPC metadata: a recording PoolingService on port 0
behind the real bridge app."""

from __future__ import annotations

import grpc
import httpx
import pytest

from protoserve.pooling.v1 import pooling_pb2 as pb
from protoserve.pooling.v1 import pooling_pb2_grpc
from rest_bridge.app import create_app
from rest_bridge.grpc_client import GrpcClient, metadata
from rest_bridge.settings import BridgeSettings


class Recording(pooling_pb2_grpc.PoolingServiceServicer):
    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    async def Embed(self, request, context):
        self.seen.append(dict(context.invocation_metadata()))
        vector = pb.Tensor(shape=[2], values=[0.6, 0.8])
        return pb.EmbedResponse(model="m", data=[pb.Embedding(index=0, embedding=vector)])


@pytest.fixture
async def bridge():
    servicer = Recording()
    server = grpc.aio.server()
    pooling_pb2_grpc.add_PoolingServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    app = create_app(BridgeSettings(grpc_target=f"127.0.0.1:{port}"))
    app.state.grpc = GrpcClient.connect(f"127.0.0.1:{port}")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge")
    yield http, servicer
    await http.aclose()
    await app.state.grpc.close()
    await server.stop(None)


async def test_session_and_request_ids_reach_the_service(bridge) -> None:
    http, servicer = bridge
    headers = {"x-session-id": "conversation-7", "x-request-id": "req-1"}
    reply = await http.post("/v1/embeddings", json={"input": "x"}, headers=headers)
    assert reply.status_code == 200, reply.text
    reply = await http.post("/v1/embeddings", json={"input": "x"})
    assert reply.status_code == 200, reply.text
    first, second = servicer.seen
    assert first["x-session-id"] == "conversation-7" and first["x-request-id"] == "req-1"
    assert "x-session-id" not in second and second["x-request-id"]


def test_metadata_without_a_request_is_the_request_id() -> None:
    assert metadata("abc") == (("x-request-id", "abc"),)
