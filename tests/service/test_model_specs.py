"""Positional models on the command line: PATH, or NAME=PATH (NAME1,NAME2=PATH for
aliases); --served-model-name names the first; --runner and --pooler-config reach the
engine options; which runner serves which architecture."""

from __future__ import annotations

import pytest

from engine.pooling import PoolerConfig, resolve_runner
from service.cli import build_parser, flags
from service.cli.launch import model_spec, service_config


def config_of(argv: list[str]):
    args = vars(build_parser().parse_args(["serve", *argv]))
    args.pop("command")
    return service_config(flags.resolve("serve", args, env={}))


def test_name_equals_path(tmp_path) -> None:
    assert model_spec("models/demo").names == ("models/demo",)
    assert model_spec("mini=/opt/minilm").names == ("mini",)
    assert model_spec("a,b=/opt/m").served_names == ("a", "b")
    odd = tmp_path / "dir=with=equals"
    odd.mkdir()
    assert model_spec(str(odd)).path == str(odd)  # an existing path is taken as is


def test_served_model_name_names_the_first_model() -> None:
    pooler = '{"pooling_type": "mean"}'
    config = config_of(["models/demo", "mini=/opt/minilm", "--served-model-name", "demo",
                        "--runner", "pooling", "--pooler-config", pooler])  # fmt: skip
    assert [m.names for m in config.models] == [("demo",), ("mini",)]
    assert config.models[1].path == "/opt/minilm"
    assert config.engine.runner == "pooling"
    assert PoolerConfig.from_json(config.engine.pooler_config).pooling_type == "MEAN"


def test_runner_resolution() -> None:
    assert resolve_runner("LlamaForCausalLM") == "generate"
    assert resolve_runner("BertModel") == "pooling"
    assert resolve_runner("XLMRobertaForSequenceClassification") == "pooling"
    assert resolve_runner("LlamaForCausalLM", "pooling") == "pooling"
    with pytest.raises(ValueError, match="unknown keys"):
        PoolerConfig.from_json('{"pooling": "MEAN"}')
    with pytest.raises(ValueError, match="pooling_type"):
        PoolerConfig.from_json('{"pooling_type": "FIRST"}')
