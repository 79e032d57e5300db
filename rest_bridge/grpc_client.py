"""One gRPC channel to the service and a stub per service; request metadata."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.requests import HTTPConnection

from protoserve.audio.v1 import audio_pb2_grpc
from protoserve.generate.v1 import generate_pb2_grpc
from protoserve.metrics.v1 import metrics_pb2_grpc
from protoserve.models.v1 import models_pb2_grpc
from protoserve.pooling.v1 import pooling_pb2_grpc
from protoserve.responses.v1 import responses_pb2_grpc
from protoserve.scoring.v1 import scoring_pb2_grpc
from protoserve.tokenizer.v1 import tokenizer_pb2_grpc
from rest_bridge.channel import open_channel
from rest_bridge.settings import BridgeSettings


@dataclass
class GrpcClient:
    channel: grpc.aio.Channel
    generate: generate_pb2_grpc.GenerateServiceStub
    tokenizer: tokenizer_pb2_grpc.TokenizerServiceStub
    models: models_pb2_grpc.ModelsServiceStub
    health: health_pb2_grpc.HealthStub
    pooling: pooling_pb2_grpc.PoolingServiceStub
    scoring: scoring_pb2_grpc.ScoringServiceStub
    audio: audio_pb2_grpc.AudioServiceStub
    metrics: metrics_pb2_grpc.MetricsServiceStub
    responses: responses_pb2_grpc.ResponsesServiceStub

    @classmethod
    def from_settings(cls, settings: BridgeSettings) -> GrpcClient:
        channel = open_channel(
            settings.grpc_target,
            tls=settings.grpc_tls,
            token=settings.grpc_api_key,
            max_message_bytes=settings.max_request_bytes,
        )
        return cls.over(channel)

    @classmethod
    def connect(cls, target: str) -> GrpcClient:
        """A plaintext channel without a service token (tests)."""
        return cls.over(open_channel(target))

    @classmethod
    def over(cls, channel: grpc.aio.Channel) -> GrpcClient:
        return cls(
            channel=channel,
            generate=generate_pb2_grpc.GenerateServiceStub(channel),
            tokenizer=tokenizer_pb2_grpc.TokenizerServiceStub(channel),
            models=models_pb2_grpc.ModelsServiceStub(channel),
            health=health_pb2_grpc.HealthStub(channel),
            pooling=pooling_pb2_grpc.PoolingServiceStub(channel),
            scoring=scoring_pb2_grpc.ScoringServiceStub(channel),
            audio=audio_pb2_grpc.AudioServiceStub(channel),
            responses=responses_pb2_grpc.ResponsesServiceStub(channel),
            metrics=metrics_pb2_grpc.MetricsServiceStub(channel),
        )

    async def is_serving(self, timeout: float = 5.0) -> bool:
        try:
            reply = await self.health.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self.channel.close()


# HTTP headers passed on as gRPC metadata: x-session-id is what Envoy's RING_HASH pool
# hashes on (envoy/), so an OpenAI client's session keeps its replica (prefix cache).
FORWARDED_HEADERS = ("x-session-id",)


def metadata(request_id: str, request: HTTPConnection | None = None) -> tuple[tuple[str, str], ...]:
    """x-request-id, plus the FORWARDED_HEADERS the HTTP request carries."""
    pairs = [("x-request-id", request_id)]
    if request is not None:
        pairs += [(name, request.headers[name]) for name in FORWARDED_HEADERS
                  if request.headers.get(name)]  # fmt: skip
    return tuple(pairs)
