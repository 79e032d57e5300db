"""Starting the processes: the gRPC service, the REST bridge, or both (`serve`: the
service in this process, the bridge in a child process talking to it over a unix
socket). SIGINT / SIGTERM drain the service (health NOT_SERVING, new RPCs refused,
in-flight calls finish within --shutdown-timeout), then stop everything and exit 0. An
engine failure drains the same way (its requests have failed already) and exits 1."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def service_config(values: dict[str, Any], uds_path: str | None = None):
    from service.config import AudioOptions, EngineOptions, ModelSpec, ServiceConfig

    if not values["model"]:
        raise SystemExit(
            "no model given: pass MODEL_DIR (or set MODEL_NAME, or `model:` in --config)"
        )
    first, *rest = [model_spec(m) for m in values["model"]]
    names = tuple(values["served_model_name"] or ()) or first.served_names
    specs = [ModelSpec(first.path, names, values["chat_template"])] + rest
    return ServiceConfig(
        models=tuple(specs),
        engine=EngineOptions(
            max_model_len=values["max_model_len"],
            max_num_seqs=values["max_num_seqs"],
            max_num_batched_tokens=values["max_num_batched_tokens"],
            block_size=values["block_size"],
            dtype=values["dtype"],
            kv_cache_memory=values["kv_cache_memory"],
            gpu_memory_utilization=values["gpu_memory_utilization"],
            enable_prefix_caching=values["enable_prefix_caching"],
            scheduling_policy=values["scheduling_policy"],
            model_impl=values["model_impl"],
            seed=values["seed"],
            device=values["device"],
            runner=values["runner"],
            pooler_config=values["pooler_config"],
            generation_config=values["generation_config"],
            override_generation_config=values["override_generation_config"],
            max_logprobs=values["max_logprobs"],
        ),
        host=values["grpc_host"],
        grpc_port=values["grpc_port"],
        uds_path=uds_path,
        trust_request_chat_template=values["trust_request_chat_template"],
        shutdown_timeout=values["shutdown_timeout"],
        audio=AudioOptions(
            max_file_mb=values["max_audio_clip_filesize_mb"],
            max_stream_seconds=values["max_stream_duration"],
        ),
        metrics_port=values["metrics_port"],
        log_requests=not values["disable_log_requests"],
    )


def model_spec(text: str):
    """A positional model: `PATH`, or `NAME=PATH` to serve PATH as NAME (`NAME1,NAME2=PATH`
    for aliases). --served-model-name, when given, names the first model."""
    from service.config import ModelSpec

    name, sep, path = text.partition("=")
    if not sep or not name or not path or os.path.exists(text):
        return ModelSpec(text)
    return ModelSpec(path, tuple(n for n in name.split(",") if n))


def run_grpc(values: dict[str, Any]) -> int:
    return asyncio.run(_run_service(service_config(values), bridge=None))


def run_serve(values: dict[str, Any]) -> int:
    with tempfile.TemporaryDirectory(prefix="protoserve-") as tmp:
        uds = os.path.join(tmp, "grpc.sock")
        config = service_config(values, uds_path=uds)
        return asyncio.run(_run_service(config, bridge=_bridge_command(values, uds)))


# Bridge flags `serve` hands to its bridge process as they were resolved.
BRIDGE_HTTP_FLAGS = (
    "enable-request-id-headers",
    "allowed-origins",
    "allowed-methods",
    "allowed-headers",
    "allow-credentials",
    "root-path",
)


def _bridge_command(values: dict[str, Any], uds: str) -> list[str]:
    from service.cli.flags import to_argv

    return [
        sys.executable,
        "-m",
        "service.cli",
        "bridge",
        "--grpc-target",
        f"unix:{uds}",
        "--host",
        values["host"],
        "--port",
        str(values["port"]),
        "--log-format",
        values["log_format"],
        "--log-level",
        values["log_level"],
        "--shutdown-timeout",
        str(values["shutdown_timeout"]),
        "--max-audio-clip-filesize-mb",
        str(values["max_audio_clip_filesize_mb"]),
        *to_argv(values, BRIDGE_HTTP_FLAGS),
    ]


async def _run_service(config, bridge: list[str] | None) -> int:
    from service.server import Service

    service = await Service.start(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    child = subprocess.Popen(bridge) if bridge else None
    waits = {
        asyncio.ensure_future(stopping.wait()): "signal",
        asyncio.ensure_future(service.load_models()): "loaded",
    }
    if child is not None:
        waits[asyncio.ensure_future(asyncio.to_thread(child.wait))] = "bridge exited"
    waits[asyncio.ensure_future(_engine_failure(service))] = "engine failed"
    code = await _wait_for_stop(waits)
    # Drain first, bridge still up: new requests get 503 from it, in-flight ones finish.
    # A second signal cuts the drain short.
    hurry = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, hurry.set)
    await service.drain(hurry)
    if child is not None and child.poll() is None:
        child.terminate()
        await asyncio.to_thread(_reap, child, config.shutdown_timeout + 5)
    await service.stop()
    for task in waits:
        task.cancel()
    return code


async def _engine_failure(service) -> str:
    await service.failed.wait()
    return service.failure


async def _wait_for_stop(waits: dict[asyncio.Future, str]) -> int:
    """0 on a stop signal (or the bridge stopping cleanly: Ctrl-C in a terminal reaches
    both processes); 1 if loading fails, the bridge fails or an engine fails (so an
    orchestrator restarts the process)."""
    pending = set(waits)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            reason, error = waits[task], task.exception()
            if reason == "loaded" and error is None:
                continue
            if reason == "signal" or (reason == "bridge exited" and task.result() == 0):
                log.info("stopping", reason=reason)
                return 0
            log.error(
                "stopping on failure",
                reason=reason,
                error=repr(error) if error else _failure_detail(reason, task.result()),
            )
            return 1
    return 1


def _failure_detail(reason: str, result: object) -> str:
    return str(result) if reason == "engine failed" else f"exit code {result}"


def _reap(child: subprocess.Popen, timeout: float) -> None:
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def http_settings(values: dict[str, Any]):
    from rest_bridge.settings import HttpSettings

    return HttpSettings(
        enable_request_id_headers=values["enable_request_id_headers"],
        allowed_origins=tuple(values["allowed_origins"]),
        allowed_methods=tuple(values["allowed_methods"]),
        allowed_headers=tuple(values["allowed_headers"]),
        allow_credentials=values["allow_credentials"],
        root_path=values["root_path"] or "",
    )


def run_bridge(values: dict[str, Any]) -> int:
    import uvicorn

    from rest_bridge.app import create_app
    from rest_bridge.settings import BridgeSettings

    settings = BridgeSettings(
        grpc_target=values["grpc_target"],
        host=values["host"],
        port=values["port"],
        max_audio_file_mb=values["max_audio_clip_filesize_mb"],
        http=http_settings(values),
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=int(values["shutdown_timeout"]),
        root_path=settings.http.root_path,  # --root-path: the server's, as FastAPI asks
    )
    uvicorn.Server(config).run()
    return 0
