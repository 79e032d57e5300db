"""One gRPC channel to the service and a stub per service; request metadata."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protoserve.audio.v1 import audio_pb2_grpc
from protoserve.generate.v1 import generate_pb2_grpc
from protoserve.metrics.v1 import metrics_pb2_grpc
from protoserve.models.v1 import models_pb2_grpc
from protoserve.pooling.v1 import pooling_pb2_grpc
from protoserve.scoring.v1 import scoring_pb2_grpc
from protoserve.tokenizer.v1 import tokenizer_pb2_grpc

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


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

    @classmethod
    def connect(cls, target: str) -> GrpcClient:
        channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        return cls(
            channel=channel,
            generate=generate_pb2_grpc.GenerateServiceStub(channel),
            tokenizer=tokenizer_pb2_grpc.TokenizerServiceStub(channel),
            models=models_pb2_grpc.ModelsServiceStub(channel),
            health=health_pb2_grpc.HealthStub(channel),
            pooling=pooling_pb2_grpc.PoolingServiceStub(channel),
            scoring=scoring_pb2_grpc.ScoringServiceStub(channel),
            audio=audio_pb2_grpc.AudioServiceStub(channel),
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


def metadata(request_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-request-id", request_id),)
