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
