"""MetricsService: the service's Prometheus metrics as text (the bridge's /metrics)."""

from __future__ import annotations

import grpc

from protoserve.metrics.v1 import metrics_pb2 as pb
from protoserve.metrics.v1 import metrics_pb2_grpc
from service.metrics import ServiceMetrics


class MetricsServicer(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self, metrics: ServiceMetrics):
        self._metrics = metrics

    async def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMetricsResponse:
        text, content_type = self._metrics.render()
        return pb.GetMetricsResponse(text=text, content_type=content_type)
