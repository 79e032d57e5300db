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
            max_queued_requests=values["max_queued_requests"],
        ),
        host=values["grpc_host"],
        grpc_port=values["grpc_port"],
        uds_path=uds_path,
        trust_request_chat_template=values["trust_request_chat_template"],
        chat=chat_options(values),
        shutdown_timeout=values["shutdown_timeout"],
        max_stored_responses=values["max_stored_responses"],
        audio=AudioOptions(
            max_file_mb=values["max_audio_clip_filesize_mb"],
            max_stream_seconds=values["max_stream_duration"],
        ),
        api_keys=api_keys(values),
        tls=_grpc_tls(values),
        max_message_bytes=values["max_request_size"],
        metrics_port=values["metrics_port"],
        log_requests=not values["disable_log_requests"],
    )


def chat_options(values: dict[str, Any]):
    """The chat flags, checked now (an unknown parser stops the server at startup)."""
    from service.chat_output import check_chat_options
    from service.config import ChatOptions

    options = ChatOptions(
        content_format=values["chat_template_content_format"],
        default_chat_template_kwargs=values["default_chat_template_kwargs"],
        response_role=values["response_role"],
        enable_auto_tool_choice=values["enable_auto_tool_choice"],
        tool_call_parser=values["tool_call_parser"],
        tool_parser_plugin=values["tool_parser_plugin"],
        reasoning_parser=values["reasoning_parser"],
        exclude_tools_when_tool_choice_none=values["exclude_tools_when_tool_choice_none"],
    )
    try:
        check_chat_options(options)
    except ValueError as exc:
        raise SystemExit(f"protoserve: {exc}") from None
    return options


def api_keys(values: dict[str, Any]) -> tuple[str, ...]:
    """--api-key values (repeated, space- or comma-separated; env PROTOSERVE_API_KEY)."""
    return tuple(k.strip() for v in values["api_key"] or () for k in v.split(",") if k.strip())


def _grpc_tls(values: dict[str, Any]):
    """--grpc-ssl-* -> TlsOptions, or None (plaintext); incomplete settings exit."""
    from service.config import TlsOptions

    certfile, keyfile = values["grpc_ssl_certfile"], values["grpc_ssl_keyfile"]
    if not certfile and not keyfile:
        if values["grpc_ssl_ca_certs"] or values["grpc_ssl_client_auth"]:
            raise SystemExit(
                "--grpc-ssl-ca-certs / --grpc-ssl-client-auth need TLS: "
                "--grpc-ssl-certfile and --grpc-ssl-keyfile"
            )
        return None
    if not (certfile and keyfile):
        raise SystemExit("gRPC TLS needs both --grpc-ssl-certfile and --grpc-ssl-keyfile")
    ca_certs, client_auth = values["grpc_ssl_ca_certs"], values["grpc_ssl_client_auth"]
    return TlsOptions(certfile, keyfile, ca_certs, client_auth)


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
        bridge = (_bridge_command(values, uds), _bridge_env(config.api_keys))
        return asyncio.run(_run_service(config, bridge=bridge))


def _bridge_env(keys: tuple[str, ...]) -> dict[str, str]:
    """The keys reach the bridge through its environment (not its command line, which
    `ps` shows): it checks callers against them and presents the first to the service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROTOSERVE_GRPC_")}
    if keys:
        env["PROTOSERVE_API_KEY"] = ",".join(keys)
        env["PROTOSERVE_GRPC_API_KEY"] = keys[0]
    else:
        env.pop("PROTOSERVE_API_KEY", None)
    return env


# Bridge flags `serve` hands to its bridge process as they were resolved.
BRIDGE_LIMIT_FLAGS = ("max-request-size",)
BRIDGE_TLS_FLAGS = ("ssl-keyfile", "ssl-certfile", "ssl-ca-certs", "ssl-cert-reqs")
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
        *to_argv(values, (*BRIDGE_LIMIT_FLAGS, *BRIDGE_TLS_FLAGS, *BRIDGE_HTTP_FLAGS)),
    ]


# The engine's step thread and the event loop share the GIL. The step thread gives it up for
# every torch op and wants it back when the op returns; while the loop runs Python (a step's
# outputs for 32 streams: several ms) it waits up to the switch interval, 5 ms by default,
# each time. At 0.5 ms, `bench serve` through the bridge rose from 0.87 to 0.91-0.95 of the
# offline engine's tok/s (small model, 32 streams, 2 cores; runs side by side).
GIL_SWITCH_INTERVAL_S = 0.0005


async def _run_service(config, bridge: tuple[list[str], dict[str, str]] | None) -> int:
    from service.server import Service

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

    service = await Service.start(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    child = subprocess.Popen(bridge[0], env=bridge[1]) if bridge else None
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

    settings = bridge_settings(values)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=int(values["shutdown_timeout"]),
        ssl_keyfile=values["ssl_keyfile"],
        ssl_certfile=values["ssl_certfile"],
        ssl_ca_certs=values["ssl_ca_certs"],
        ssl_cert_reqs=values["ssl_cert_reqs"],
        root_path=settings.http.root_path,  # --root-path: the server's, as FastAPI asks
    )
    uvicorn.Server(config).run()
    return 0


def bridge_settings(values: dict[str, Any]):
    from rest_bridge.settings import BridgeSettings, ChannelTls

    ca_certs = values["grpc_target_ssl_ca_certs"]
    tls = None
    if ca_certs or values["grpc_target_ssl_certfile"]:
        tls = ChannelTls(
            ca_certs=ca_certs,
            certfile=values["grpc_target_ssl_certfile"],
            keyfile=values["grpc_target_ssl_keyfile"],
            server_name=values["grpc_target_ssl_server_name"],
        )
    return BridgeSettings(
        grpc_target=values["grpc_target"],
        host=values["host"],
        port=values["port"],
        max_audio_file_mb=values["max_audio_clip_filesize_mb"],
        api_keys=api_keys(values),
        grpc_api_key=values["grpc_api_key"],
        grpc_tls=tls,
        max_request_bytes=values["max_request_size"],
        http=http_settings(values),
    )
