"""The gRPC server: servicers, health, reflection, model loading, drain and stop."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from protoserve.audio.v1 import audio_pb2, audio_pb2_grpc
from protoserve.generate.v1 import generate_pb2, generate_pb2_grpc
from protoserve.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from protoserve.models.v1 import models_pb2, models_pb2_grpc
from protoserve.pooling.v1 import pooling_pb2, pooling_pb2_grpc
from protoserve.responses.v1 import responses_pb2, responses_pb2_grpc
from protoserve.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from protoserve.tokenizer.v1 import tokenizer_pb2, tokenizer_pb2_grpc
from service.auth import ApiKeyInterceptor
from service.config import ServiceConfig
from service.drain import Drain
from service.inflight import InflightRequests
from service.interceptors import ErrorInterceptor
from service.metrics import ServiceMetrics
from service.registry import ModelRegistry
from service.request_meter import RequestMeter
from service.responses.store import ResponseStore
from service.servicers import unimplemented
from service.servicers.audio import AudioServicer
from service.servicers.generate import GenerateServicer
from service.servicers.metrics import MetricsServicer
from service.servicers.models import ModelsServicer
from service.servicers.pooling import PoolingServicer
from service.servicers.responses import ResponsesServicer
from service.servicers.scoring import ScoringServicer
from service.servicers.tokenizer import TokenizerServicer
from service.tls import server_credentials
from service.torch_threads import run_in_own_thread

log = structlog.get_logger(__name__)

SERVED = [
    generate_pb2.DESCRIPTOR.services_by_name["GenerateService"].full_name,
    tokenizer_pb2.DESCRIPTOR.services_by_name["TokenizerService"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["ModelsService"].full_name,
    pooling_pb2.DESCRIPTOR.services_by_name["PoolingService"].full_name,
    scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name,
    audio_pb2.DESCRIPTOR.services_by_name["AudioService"].full_name,
    responses_pb2.DESCRIPTOR.services_by_name["ResponsesService"].full_name,
    metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
]
ALL_SERVICES = SERVED + list(unimplemented.NOT_YET_SERVED)

# Long non-streaming calls survive idle proxies: the server pings every 30 s (even while
# no data flows), and accepts client pings every 10 s or more, with or without calls.
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Keepalive, and the message limit both ways (--max-request-size)."""
    return [
        *KEEPALIVE_OPTIONS,
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def _listen(server: grpc.aio.Server, config: ServiceConfig) -> int:
    """The TCP port (TLS when configured); the unix socket of `serve` (a 0700 directory,
    this host only) stays plaintext. The bound TCP port."""
    address = f"{config.host}:{config.grpc_port}"
    if config.tls is not None:
        port = server.add_secure_port(address, server_credentials(config.tls))
    else:
        port = server.add_insecure_port(address)
    if config.uds_path:
        server.add_insecure_port(f"unix:{config.uds_path}")
    return port


# Seconds the server waits, after the drain, for finished calls to flush and health
# watchers to go.
STOP_GRACE_SECONDS = 1.0


@dataclass
class Service:
    """A started gRPC server and what it serves."""

    config: ServiceConfig
    server: grpc.aio.Server
    port: int
    registry: ModelRegistry
    health: health.aio.HealthServicer
    inflight: InflightRequests
    drainer: Drain
    metrics: ServiceMetrics
    # The --metrics-port listener's port (None: not serving one).
    metrics_port: int | None = None
    # Set when an engine's step loop fails: the launcher then stops with a non-zero exit.
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    failure: str | None = None
    _health_update: asyncio.Future | None = field(default=None, repr=False)

    @classmethod
    async def start(cls, config: ServiceConfig) -> Service:
        """Listen at once (health NOT_SERVING); call load_models() next."""
        registry, inflight, drainer = ModelRegistry(), InflightRequests(), Drain()
        metrics = ServiceMetrics(lambda: [(m.name, m.engine.stats()) for m in registry.loaded()])
        auth = [ApiKeyInterceptor(config.api_keys)] if config.api_keys else []
        server = grpc.aio.server(
            interceptors=[*auth, drainer, ErrorInterceptor()],
            options=server_options(config.max_message_bytes),
        )
        generate = GenerateServicer(registry, inflight)
        generate_pb2_grpc.add_GenerateServiceServicer_to_server(generate, server)
        tokenizer_pb2_grpc.add_TokenizerServiceServicer_to_server(
            TokenizerServicer(registry), server
        )
        models_pb2_grpc.add_ModelsServiceServicer_to_server(ModelsServicer(registry), server)
        pooling_pb2_grpc.add_PoolingServiceServicer_to_server(PoolingServicer(registry), server)
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server(ScoringServicer(registry), server)
        audio_pb2_grpc.add_AudioServiceServicer_to_server(
            AudioServicer(registry, config.audio), server
        )
        responses_pb2_grpc.add_ResponsesServiceServicer_to_server(
            ResponsesServicer(registry, generate, ResponseStore(config.max_stored_responses)),
            server,
        )
        metrics_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsServicer(metrics), server)
        server.add_generic_rpc_handlers(unimplemented.generic_handlers())
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            [*ALL_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        port = _listen(server, config)
        await server.start()
        service = cls(config, server, port, registry, health_servicer, inflight, drainer, metrics)
        if config.metrics_port is not None:
            service.metrics_port = metrics.serve(config.host, config.metrics_port)
            log.info("metrics listening", host=config.host, port=service.metrics_port)
        await service._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info(
            "grpc server listening",
            host=config.host,
            port=port,
            uds=config.uds_path,
            tls=config.tls is not None,
            api_keys=len(config.api_keys),
        )
        return service

    async def load_models(self) -> None:
        """Load every configured model (on a thread of its own: see service.torch_threads),
        then report SERVING."""
        from service.loading import load_model

        for spec in self.config.models:
            model = await run_in_own_thread(
                load_model,
                spec,
                self.config.engine,
                self.config.trust_request_chat_template,
                self.config.chat,
            )
            meter = RequestMeter(model.name, self.metrics.requests, self.config.log_requests)
            model = dataclasses.replace(model, meter=meter)
            self.registry.add(model)
            self._watch(model.name, model.engine)
        self.registry.mark_ready()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)

    def _watch(self, name: str, engine) -> None:
        loop = asyncio.get_running_loop()

        def failed(cause: BaseException) -> None:  # on the step thread
            try:
                loop.call_soon_threadsafe(self._engine_failed, name, cause)
            except RuntimeError:  # the event loop is closed: the server is gone already
                pass

        engine.on_failure(failed)

    def _engine_failed(self, name: str, cause: BaseException) -> None:
        """An engine's step loop failed (its requests failed with INTERNAL already): refuse
        new work, report NOT_SERVING, and tell the launcher to exit non-zero."""
        log.error("engine failed; stopping the server", model=name, error=repr(cause))
        self.failure = f"engine of {name!r} failed: {cause!r}"
        self.drainer.start()
        self._health_update = asyncio.ensure_future(
            self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        )
        self.failed.set()

    async def drain(self, hurry: asyncio.Event | None = None) -> bool:
        """Report NOT_SERVING and refuse new RPCs (UNAVAILABLE "server is draining"), then
        wait for the calls in flight and for health checkers to see NOT_SERVING
        (service/drain.py): at most shutdown_timeout seconds, or until `hurry` is set.
        True when drained."""
        self.drainer.start()
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info("draining", in_flight=self.drainer.in_flight)
        drained = await self.drainer.wait_drained(self.config.shutdown_timeout, hurry)
        if not drained:
            log.warning("drain cut short; cancelling calls", in_flight=self.drainer.in_flight)
        return drained

    async def stop(self) -> None:
        """Drain (unless done already), stop the server, stop the engines."""
        if not self.drainer.draining:
            await self.drain()
        # The calls have returned; the grace lets their last frames reach the clients.
        await self.server.stop(grace=STOP_GRACE_SECONDS)
        for model in self.registry.loaded():
            model.engine.shutdown()
        self.metrics.close()
        log.info("grpc server stopped")

    async def _set_health(self, status: int) -> None:
        for name in ["", *SERVED]:
            await self.health.set(name, status)
