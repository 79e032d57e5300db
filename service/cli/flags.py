"""Every command-line flag in one table, and their layered resolution:
command line > environment (PROTOSERVE_<FLAG>) > --config YAML > default.

Container platforms configure serverless workers through the environment, as vLLM's
workers do: MODEL_NAME names the model when none is given, CUSTOM_CHAT_TEMPLATE is the
chat template, and every flag has a PROTOSERVE_ variable (e.g. PROTOSERVE_MAX_MODEL_LEN).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "PROTOSERVE_"
ENV_ALIASES = {
    "chat-template": "CUSTOM_CHAT_TEMPLATE",
    "max-audio-clip-filesize-mb": "VLLM_MAX_AUDIO_CLIP_FILESIZE_MB",
}
MODEL_ENV = "MODEL_NAME"


def parse_size(text: str) -> int:
    """'4096', '1k', '2K', '8g', '512MiB' -> int (k = 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    scale = 1024 ** " kmgt".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * scale)


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def parse_positive_int(text: str | int) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def parse_json_object(text: str | dict) -> str:
    """A JSON object given as text (or, from the YAML config, as a mapping) -> its text."""
    value = text if isinstance(text, dict) else None
    if value is None:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not JSON: {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}")
    return json.dumps(value)


def parse_json_list(text: str | list) -> list[str]:
    """A JSON list of strings (vLLM's CORS flags: '["https://a.example"]'); from the YAML
    config, a list. A bare word is a list of one."""
    value = text
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except ValueError:
            value = [text]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise argparse.ArgumentTypeError(f"not a JSON list of strings: {text!r}")
    return value


SERVE, GRPC, BRIDGE = "serve", "grpc", "bridge"
SERVICE_COMMANDS = frozenset({SERVE, GRPC})
BRIDGE_COMMANDS = frozenset({SERVE, BRIDGE})
ALL = frozenset({SERVE, GRPC, BRIDGE})


@dataclass(frozen=True)
class Flag:
    name: str
    help: str
    commands: frozenset[str]
    type: Callable[[str], Any] = str
    default: Any = None
    many: bool = False
    choices: tuple[Any, ...] | None = None
    # `many` flags: repeating the flag adds values (else the last one wins).
    repeatable: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


FLAGS: tuple[Flag, ...] = (
    Flag(
        "served-model-name",
        "Names the (first) model answers to; the first is used in responses.",
        SERVICE_COMMANDS,
        many=True,
    ),
    Flag("chat-template", "Chat template: a file or the template itself.", SERVICE_COMMANDS),
    Flag(
        "trust-request-chat-template",
        "Allow per-request chat templates.",
        SERVICE_COMMANDS,
        parse_bool,
        False,
    ),
    Flag(
        "chat-template-content-format",
        "Message content as templates see it: auto (detected from the template), string "
        "(text parts joined) or openai (a list of typed parts).",
        SERVICE_COMMANDS,
        str,
        "auto",
        choices=("auto", "string", "openai"),
    ),
    Flag(
        "default-chat-template-kwargs",
        "JSON object of template variables, e.g. '{\"enable_thinking\": false}'; a "
        "request's chat_template_kwargs win.",
        SERVICE_COMMANDS,
        parse_json_object,
    ),
    Flag(
        "response-role",
        "Role of replies when add_generation_prompt is true.",
        SERVICE_COMMANDS,
        str,
        "assistant",
    ),
    Flag(
        "enable-auto-tool-choice",
        'Allow tool_choice "auto" (the model decides; needs --tool-call-parser).',
        SERVICE_COMMANDS,
        parse_bool,
        False,
    ),
    Flag(
        "tool-call-parser",
        "How tool calls are read from the output: hermes, llama3_json, mistral, pythonic "
        "(or a plugin's).",
        SERVICE_COMMANDS,
    ),
    Flag(
        "tool-parser-plugin",
        "A Python file registering more tool parsers (@register_tool_parser).",
        SERVICE_COMMANDS,
    ),
    Flag(
        "reasoning-parser",
        "Separate <think> reasoning from answers: deepseek_r1 or qwen3.",
        SERVICE_COMMANDS,
    ),
    Flag(
        "exclude-tools-when-tool-choice-none",
        'Leave the tools out of the prompt when tool_choice is "none".',
        SERVICE_COMMANDS,
        parse_bool,
        False,
    ),
    Flag(
        "max-model-len",
        "Context length (e.g. 2048, 4k); default from the model.",
        SERVICE_COMMANDS,
        parse_size,
    ),
    Flag("max-num-seqs", "Most requests in one engine step.", SERVICE_COMMANDS, int, 128),
    Flag("max-num-batched-tokens", "Token budget of one engine step.", SERVICE_COMMANDS, int, 2048),
    Flag("block-size", "KV-cache block size in tokens.", SERVICE_COMMANDS, int, 16),
    Flag(
        "kv-cache-memory",
        "KV-cache size in bytes (e.g. 2g); default: what "
        "max-num-seqs x max-model-len needs, at most 2 GiB.",
        SERVICE_COMMANDS,
        parse_size,
    ),
    Flag(
        "dtype",
        "Compute dtype.",
        SERVICE_COMMANDS,
        str,
        "auto",
        choices=("auto", "float32", "float", "bfloat16", "float16", "half"),
    ),
    Flag(
        "gpu-memory-utilization",
        "CUDA: fraction of device memory for weights, activations and the KV cache.",
        SERVICE_COMMANDS,
        float,
        0.92,
    ),
    Flag(
        "enable-prefix-caching",
        "Reuse the KV of shared prompt prefixes across requests.",
        SERVICE_COMMANDS,
        parse_bool,
        True,
    ),
    Flag(
        "scheduling-policy",
        "fcfs, or priority (request `priority`: lower runs first).",
        SERVICE_COMMANDS,
        str,
        "fcfs",
        choices=("fcfs", "priority"),
    ),
    Flag(
        "model-impl",
        "auto (native if implemented, else transformers), native or transformers.",
        SERVICE_COMMANDS,
        str,
        "auto",
        choices=("auto", "native", "transformers"),
    ),
    Flag("device", "auto, cpu or cuda.", SERVICE_COMMANDS, str, "auto"),
    Flag(
        "runner",
        "generate, pooling (embeddings, classification, scores), or auto (from the "
        "architecture: causal LMs generate, encoders and classifiers pool).",
        SERVICE_COMMANDS,
        str,
        "auto",
        choices=("auto", "generate", "pooling"),
    ),
    Flag(
        "pooler-config",
        'Pooling models: JSON overriding the checkpoint, e.g. \'{"pooling_type": "MEAN", '
        '"normalize": true}\' (keys: pooling_type, normalize, step_tag_id, returned_token_ids).',
        SERVICE_COMMANDS,
    ),
    Flag(
        "generation-config",
        "Sampling defaults: auto (the model's generation_config.json), vllm (none) or a "
        "folder holding a generation_config.json.",
        SERVICE_COMMANDS,
        str,
        "auto",
    ),
    Flag(
        "override-generation-config",
        "JSON merged over the generation config, e.g. '{\"temperature\": 0.5}'.",
        SERVICE_COMMANDS,
        parse_json_object,
    ),
    Flag(
        "max-logprobs",
        "Most logprobs per position a request may ask for (-1: the whole vocabulary).",
        SERVICE_COMMANDS,
        int,
        20,
    ),
    Flag("seed", "Global seed.", SERVICE_COMMANDS, int, 0),
    Flag("grpc-host", "Interface the gRPC service listens on.", SERVICE_COMMANDS, str, "0.0.0.0"),
    Flag("grpc-port", "gRPC port.", SERVICE_COMMANDS, int, 50051),
    Flag("host", "Interface the REST bridge listens on.", BRIDGE_COMMANDS, str, "0.0.0.0"),
    Flag("port", "REST bridge port.", BRIDGE_COMMANDS, int, 8000),
    Flag(
        "grpc-target",
        "The service the bridge talks to (host:port or unix:/path).",
        frozenset({BRIDGE}),
        str,
        "127.0.0.1:50051",
    ),
    # -- security and limits (README "Security and limits") ----------------------------------
    Flag(
        "api-key",
        "API key clients must send as `Authorization: Bearer <key>` (REST paths under /v1, /v2, "
        "/inference, /cohere and every gRPC service but health and reflection). Several: "
        "repeat the flag or separate with commas (env PROTOSERVE_API_KEY=k1,k2).",
        ALL,
        many=True,
        repeatable=True,
    ),
    Flag(
        "grpc-api-key",
        "The key the bridge presents to the service (a service token); without it the bridge "
        "forwards each caller's Authorization header. `serve` sets it to the first --api-key.",
        frozenset({BRIDGE}),
    ),
    Flag("ssl-keyfile", "REST bridge HTTPS: the private key (PEM).", BRIDGE_COMMANDS),
    Flag("ssl-certfile", "REST bridge HTTPS: the certificate chain (PEM).", BRIDGE_COMMANDS),
    Flag(
        "ssl-ca-certs", "REST bridge: CA bundle that verifies client certificates.", BRIDGE_COMMANDS
    ),
    Flag(
        "ssl-cert-reqs",
        "REST bridge client certificates: 0 none, 1 optional, 2 required (with --ssl-ca-certs).",
        BRIDGE_COMMANDS,
        int,
        0,
        choices=(0, 1, 2),
    ),
    Flag("grpc-ssl-certfile", "gRPC TLS: the server certificate chain (PEM).", SERVICE_COMMANDS),
    Flag("grpc-ssl-keyfile", "gRPC TLS: the server private key (PEM).", SERVICE_COMMANDS),
    Flag(
        "grpc-ssl-ca-certs",
        "gRPC TLS: CA bundle that verifies client certificates (mTLS).",
        SERVICE_COMMANDS,
    ),
    Flag(
        "grpc-ssl-client-auth",
        "gRPC mTLS: require a client certificate signed by --grpc-ssl-ca-certs.",
        SERVICE_COMMANDS,
        parse_bool,
        False,
    ),
    Flag(
        "grpc-target-ssl-ca-certs",
        "Bridge -> service over TLS: the CA bundle that verifies the service's certificate.",
        frozenset({BRIDGE}),
    ),
    Flag(
        "grpc-target-ssl-certfile",
        "Bridge -> service mTLS: the bridge's client certificate (PEM).",
        frozenset({BRIDGE}),
    ),
    Flag(
        "grpc-target-ssl-keyfile",
        "Bridge -> service mTLS: the bridge's client private key (PEM).",
        frozenset({BRIDGE}),
    ),
    Flag(
        "grpc-target-ssl-server-name",
        "Bridge -> service TLS: the name to verify in the service's certificate (default: "
        "the host of --grpc-target).",
        frozenset({BRIDGE}),
    ),
    Flag(
        "max-request-size",
        "Largest request: a REST body above it is answered 413; the gRPC message limit "
        "(received and sent, service and bridge) is the same. E.g. 64m.",
        ALL,
        parse_size,
        64 << 20,
    ),
    Flag(
        "max-queued-requests",
        "Admission: a new request is refused (REST 503 with Retry-After, gRPC "
        "RESOURCE_EXHAUSTED) while this many engine requests of its model wait. Default: no "
        "limit.",
        SERVICE_COMMANDS,
        parse_positive_int,
    ),
    Flag(
        "max-audio-clip-filesize-mb",
        "Largest audio upload (and streamed utterance, as PCM16) in MiB; env "
        "VLLM_MAX_AUDIO_CLIP_FILESIZE_MB.",
        ALL,
        float,
        25.0,
    ),
    Flag(
        "max-stream-duration",
        "Seconds of audio one StreamTranscribe call (or /v1/realtime session) may send.",
        SERVICE_COMMANDS,
        float,
        3600.0,
    ),
    Flag(
        "max-stored-responses",
        "Responses kept for GET /v1/responses/{id} and previous_response_id (an LRU; 0: none).",
        SERVICE_COMMANDS,
        int,
        1024,
    ),
    Flag(
        "shutdown-timeout",
        "Seconds in-flight requests get to finish after SIGTERM (the drain).",
        ALL,
        float,
        10.0,
    ),
    # Observability and HTTP front (issue 9, item 6).
    Flag(
        "metrics-port",
        "Serve the service's Prometheus /metrics on this port (the bridge's /metrics "
        "includes them either way).",
        SERVICE_COMMANDS,
        int,
    ),
    Flag(
        "disable-log-requests",
        "No 'request finished' log line per request.",
        SERVICE_COMMANDS,
        parse_bool,
        False,
    ),
    Flag(
        "enable-request-id-headers",
        "Echo X-Request-Id on every response (a new id when the client sent none).",
        BRIDGE_COMMANDS,
        parse_bool,
        False,
    ),
    Flag("allowed-origins", "CORS: JSON list of origins.", BRIDGE_COMMANDS, parse_json_list, []),
    Flag("allowed-methods", "CORS: JSON list of methods.", BRIDGE_COMMANDS, parse_json_list, ["*"]),
    Flag("allowed-headers", "CORS: JSON list of headers.", BRIDGE_COMMANDS, parse_json_list, ["*"]),
    Flag("allow-credentials", "CORS: allow credentials.", BRIDGE_COMMANDS, parse_bool, False),
    Flag("root-path", "Path prefix of a path-routing proxy in front.", BRIDGE_COMMANDS, str),
    Flag("log-format", "console or json.", ALL, str, "console", choices=("console", "json")),
    Flag("log-level", "debug, info, warning or error.", ALL, str, "info"),
)


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """Flags default to SUPPRESS so resolve() can tell 'given' from 'defaulted'."""
    parser.add_argument(
        "--config", help="YAML file of flag values (keys = flag names).", default=argparse.SUPPRESS
    )
    for flag in FLAGS:
        if command not in flag.commands:
            continue
        kwargs: dict[str, Any] = {
            "help": flag.help,
            "default": argparse.SUPPRESS,
            "dest": flag.dest,
        }
        if flag.type is parse_bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=flag.type, choices=flag.choices, nargs="+" if flag.many else None)
            if flag.repeatable:
                kwargs["action"] = "extend"
        parser.add_argument(f"--{flag.name}", **kwargs)


def to_argv(values: Mapping[str, Any], names: tuple[str, ...]) -> list[str]:
    """Resolved values of these flags as command-line arguments (for a child process)."""
    by_name = {f.name: f for f in FLAGS}
    argv: list[str] = []
    for name in names:
        flag, value = by_name[name], values[by_name[name].dest]
        if value is None:
            continue
        if flag.type is parse_bool:
            argv.append(f"--{name}" if value else f"--no-{name}")
        elif flag.type is parse_json_list:
            argv += [f"--{name}", json.dumps(value)]
        else:
            argv += [f"--{name}", *(map(str, value) if flag.many else [str(value)])]
    return argv


def resolve(command: str, cli: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> dict:
    """Every flag of `command` at its winning layer's value, keyed by dest."""
    config = load_config(cli.get("config"))
    values: dict[str, Any] = {}
    for flag in FLAGS:
        if command in flag.commands:
            values[flag.dest] = _resolve_one(flag, cli, env, config)
    values["model"] = _models(cli, env, config)
    return values


def _resolve_one(
    flag: Flag, cli: Mapping[str, Any], env: Mapping[str, str], config: Mapping[str, Any]
) -> Any:
    if flag.dest in cli:
        return cli[flag.dest]
    for variable in (flag.env, ENV_ALIASES.get(flag.name)):
        if variable and env.get(variable):
            return _convert(flag, env[variable], split=True)
    for key in (flag.name, flag.dest):
        if key in config:
            return _convert(flag, config[key], split=False)
    return flag.default


def _convert(flag: Flag, value: Any, split: bool) -> Any:
    if flag.many:
        items = value.split() if split and isinstance(value, str) else value
        return [flag.type(v) for v in (items if isinstance(items, list) else [items])]
    if isinstance(value, bool) and flag.type is not parse_bool:
        return value
    return flag.type(value)


def _models(cli: Mapping[str, Any], env: Mapping[str, str], config: Mapping[str, Any]) -> list:
    if cli.get("model"):
        return list(cli["model"])
    if env.get(MODEL_ENV):
        return env[MODEL_ENV].split()
    configured = config.get("model") or config.get("models") or []
    return [configured] if isinstance(configured, str) else list(configured)


def load_config(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise SystemExit(f"--config {path}: expected a mapping of flag names to values")
    return data
