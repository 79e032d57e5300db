from __future__ import annotations

import argparse

import pytest

from service.cli import build_parser, flags
from service.cli.flags import parse_size, resolve


def cli(argv: list[str]) -> dict:
    args = vars(build_parser().parse_args(argv))
    args.pop("command")
    return args


def test_defaults() -> None:
    values = resolve("serve", cli(["serve", "m"]), env={})
    assert values["model"] == ["m"] and values["port"] == 8000 and values["max_num_seqs"] == 128


def test_precedence_cli_over_env_over_config_over_default(tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("max-num-seqs: 7\nmax_model_len: 1k\nport: 9001\nmodel: from-config\n")
    env = {"PROTOSERVE_MAX_MODEL_LEN": "2k", "PROTOSERVE_PORT": "9002"}
    values = resolve("serve", cli(["serve", "--config", str(config), "--port", "9003"]), env=env)
    assert values["port"] == 9003  # command line
    assert values["max_model_len"] == 2048  # environment
    assert values["max_num_seqs"] == 7  # config file
    assert values["block_size"] == 16  # default
    assert values["model"] == ["from-config"]


def test_container_environment_variables() -> None:
    env = {
        "MODEL_NAME": "/models/x",
        "CUSTOM_CHAT_TEMPLATE": "{{ 'hi' }}",
        "PROTOSERVE_SERVED_MODEL_NAME": "a b",
        "PROTOSERVE_TRUST_REQUEST_CHAT_TEMPLATE": "true",
    }
    values = resolve("serve", cli(["serve"]), env=env)
    assert values["model"] == ["/models/x"]
    assert values["chat_template"] == "{{ 'hi' }}"
    assert values["served_model_name"] == ["a", "b"]
    assert values["trust_request_chat_template"] is True


def test_bridge_flags_exclude_engine_flags() -> None:
    values = resolve("bridge", cli(["bridge", "--grpc-target", "unix:/tmp/s"]), env={})
    assert values["grpc_target"] == "unix:/tmp/s" and "max_num_seqs" not in values


@pytest.mark.parametrize(
    "text,expected",
    [("4096", 4096), ("1k", 1024), ("2K", 2048), ("1.5g", 3 * 2**29), ("512MiB", 512 * 2**20)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_generation_config_flags_reach_the_engine_options(tmp_path) -> None:
    from service.cli.launch import service_config

    argv = ["serve", "m", "--generation-config", "vllm", "--max-logprobs", "-1"]
    argv += ["--override-generation-config", '{"temperature": 0.5}']
    options = service_config(resolve("serve", cli(argv), env={})).engine
    assert options.generation_config == "vllm" and options.max_logprobs == -1
    assert options.override_generation_config == '{"temperature": 0.5}'
    config = tmp_path / "c.yaml"
    config.write_text("override-generation-config:\n  top_k: 5\n")
    values = resolve("serve", cli(["serve", "m", "--config", str(config)]), env={})
    assert values["override_generation_config"] == '{"top_k": 5}'
    assert values["generation_config"] == "auto" and values["max_logprobs"] == 20
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "m", "--override-generation-config", "[1]"])


def test_chat_flags_reach_the_chat_options(tmp_path) -> None:
    from pathlib import Path

    from service.cli.launch import service_config

    plugin = Path(__file__).parent.parent / "data" / "tool_parser_plugin.py"
    argv = ["serve", "m", "--enable-auto-tool-choice", "--tool-call-parser", "xml_calls"]
    argv += ["--tool-parser-plugin", str(plugin), "--reasoning-parser", "qwen3"]
    argv += ["--chat-template-content-format", "openai", "--response-role", "bot"]
    argv += ["--default-chat-template-kwargs", '{"enable_thinking": false}']
    chat = service_config(resolve("serve", cli(argv), env={})).chat
    assert (chat.enable_auto_tool_choice, chat.tool_call_parser) == (True, "xml_calls")
    assert (chat.reasoning_parser, chat.content_format, chat.response_role) == (
        "qwen3", "openai", "bot")  # fmt: skip
    assert chat.default_chat_template_kwargs == '{"enable_thinking": false}'
    defaults = service_config(resolve("serve", cli(["serve", "m"]), env={})).chat
    assert not defaults.enable_auto_tool_choice and defaults.tool_call_parser is None


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--tool-call-parser", "nope"], "unknown tool call parser 'nope'"),
        (["--enable-auto-tool-choice"], "requires --tool-call-parser"),
        (["--reasoning-parser", "nope"], "unknown reasoning parser"),
        (["--tool-parser-plugin", "/no/such.py"], "no such file"),
    ],
)
def test_bad_chat_flags_stop_the_server_at_startup(argv, message) -> None:
    from service.cli.launch import service_config

    with pytest.raises(SystemExit, match=message):
        service_config(resolve("serve", cli(["serve", "m", *argv]), env={}))


def test_api_keys_repeated_comma_separated_or_from_the_environment() -> None:
    from service.cli.launch import api_keys

    argv = ["serve", "m", "--api-key", "a", "b,c", "--api-key", "d"]
    assert api_keys(resolve("serve", cli(argv), env={})) == ("a", "b", "c", "d")
    env = {"PROTOSERVE_API_KEY": "k1, k2,k3"}
    assert api_keys(resolve("bridge", cli(["bridge"]), env=env)) == ("k1", "k2", "k3")
    assert api_keys(resolve("grpc", cli(["grpc", "m"]), env={})) == ()


def test_security_and_limit_flags_reach_the_configs(tmp_path) -> None:
    from service.cli.launch import bridge_settings, service_config

    argv = ["serve", "m", "--api-key", "k", "--grpc-ssl-certfile", "c.pem"]
    argv += ["--grpc-ssl-keyfile", "k.pem", "--grpc-ssl-ca-certs", "ca.pem"]
    argv += ["--grpc-ssl-client-auth", "--max-request-size", "2m", "--max-queued-requests", "3"]
    config = service_config(resolve("serve", cli(argv), env={}))
    assert config.api_keys == ("k",) and config.max_message_bytes == 2 << 20
    assert config.tls is not None and config.tls.client_auth and config.tls.ca_certs == "ca.pem"
    assert config.engine.max_queued_requests == 3
    argv = ["bridge", "--grpc-target", "svc:443", "--grpc-target-ssl-ca-certs", "ca.pem"]
    argv += ["--grpc-target-ssl-server-name", "svc.internal"]
    env = {"PROTOSERVE_GRPC_API_KEY": "token"}
    settings = bridge_settings(resolve("bridge", cli(argv), env=env))
    assert settings.grpc_api_key == "token" and settings.grpc_tls.server_name == "svc.internal"
    assert settings.max_request_bytes == 64 << 20 and settings.grpc_tls.certfile is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--grpc-ssl-certfile", "c.pem"],  # no key
        ["--grpc-ssl-client-auth"],  # mTLS without TLS
        ["--grpc-ssl-certfile", "c", "--grpc-ssl-keyfile", "k", "--grpc-ssl-client-auth"],
    ],
)
def test_incomplete_grpc_tls_is_refused(argv: list[str]) -> None:
    from service.cli.launch import service_config
    from service.tls import server_credentials

    with pytest.raises(SystemExit):
        config = service_config(resolve("serve", cli(["serve", "m", *argv]), env={}))
        server_credentials(config.tls)


def test_max_queued_requests_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "m", "--max-queued-requests", "0"])


def test_cors_lists_take_json_and_reach_the_bridge_process() -> None:
    values = flags.resolve(
        "serve",
        {"allowed_origins": flags.parse_json_list('["https://a.example", "https://b.example"]')},
        env={"PROTOSERVE_ALLOW_CREDENTIALS": "true", "PROTOSERVE_ROOT_PATH": "/llm"},
    )
    assert values["allowed_methods"] == ["*"] and values["enable_request_id_headers"] is False
    argv = flags.to_argv(values, ("allowed-origins", "allow-credentials", "root-path"))
    assert argv == [
        "--allowed-origins", '["https://a.example", "https://b.example"]',
        "--allow-credentials", "--root-path", "/llm",
    ]  # fmt: skip
    bridge = vars(build_parser().parse_args(["bridge", *argv]))
    assert bridge["allowed_origins"] == ["https://a.example", "https://b.example"]
    assert bridge["allow_credentials"] is True and bridge["root_path"] == "/llm"
    with pytest.raises(argparse.ArgumentTypeError):
        flags.parse_json_list('{"not": "a list"}')


def test_observability_flags_reach_the_service_config(tmp_path) -> None:
    from service.cli.launch import service_config

    values = flags.resolve(
        "grpc", {"model": [str(tmp_path)], "metrics_port": 9100, "disable_log_requests": True}
    )
    config = service_config(values)
    assert config.metrics_port == 9100 and config.log_requests is False
