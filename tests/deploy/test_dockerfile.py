"""The Dockerfile, read statically (no Docker engine runs here): multi-stage, a CPU base
by default with a build arg for a CUDA one, the `audio` extra installed, every extra it
names defined in pyproject.toml, a non-root numeric USER in the final stage, and an
entrypoint, environment and ports that agree with the CLI."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.cli import flags

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions in order: comments dropped, continuation lines joined."""
    out, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        out.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    return out


def stages(instructions: list[Instruction]) -> tuple[list[Instruction], list[list[Instruction]]]:
    """(the instructions before the first FROM, one list per stage starting at its FROM)."""
    first = next(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    out: list[list[Instruction]] = []
    for ins in instructions[first:]:
        if ins.keyword == "FROM":
            out.append([])
        out[-1].append(ins)
    return instructions[:first], out


def args_of(stage: list[Instruction]) -> dict[str, str]:
    found = {}
    for ins in stage:
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            found[name] = default
    return found


TEXT = (REPO / "Dockerfile").read_text()
GLOBAL, STAGES = stages(parse(TEXT))
BUILD, FINAL = STAGES[0], STAGES[-1]
EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_multi_stage_from_one_base_build_arg() -> None:
    assert len(STAGES) >= 2
    assert BUILD[0].args.endswith(" AS build")
    base = args_of(GLOBAL)["BASE"]
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base), base  # CPU by default
    assert all(stage[0].args.split()[0] == "${BASE}" for stage in STAGES)
    copies = [i.args for i in FINAL if i.keyword == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies)  # no sources
    assert not any(i.keyword == "RUN" and "pip install" in i.args for i in FINAL)


def test_torch_index_and_extras() -> None:
    build_args = args_of(BUILD)
    assert build_args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    default = build_args["EXTRAS"].split(",")
    assert "audio" in default and set(default) <= set(EXTRAS)
    installs = [i.args for i in BUILD if i.keyword == "RUN" and "pip install" in i.args]
    assert any('".${EXTRAS:+[${EXTRAS}]}"' in run for run in installs)
    assert any("--index-url ${TORCH_INDEX} torch==" in run for run in installs)
    # The CUDA recipe in the header: a CUDA base, CUDA wheels, extras that exist.
    recipe = re.search(r"docker build -t protoserve:cuda(.*?)\.\n", TEXT, re.S).group(1)
    assert re.search(r"BASE=nvidia/cuda:\S+-devel-", recipe), recipe  # flashinfer's JIT
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cu" in recipe
    cuda_extras = re.search(r"EXTRAS=(\S+)", recipe).group(1).split(",")
    assert {"audio", "gpu"} <= set(cuda_extras) <= set(EXTRAS)


def test_sources_copied_are_the_packages() -> None:
    copied = {i.args.split()[0] for i in BUILD if i.keyword == "COPY"}
    for package in ("proto", "engine", "service", "rest_bridge", "pyproject.toml"):
        assert package in copied, package


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = [i.args for i in FINAL if i.keyword == "USER"]
    assert users and users[-1].isdigit() and int(users[-1]) != 0
    adds = [i.args for i in FINAL if i.keyword == "RUN" and "useradd" in i.args]
    assert adds and f"--uid {users[-1]}" in adds[0]
    last_user = max(i for i, ins in enumerate(FINAL) if ins.keyword == "USER")
    assert all(ins.keyword != "RUN" for ins in FINAL[last_user:])  # nothing runs as root after


def test_entrypoint_environment_and_ports_match_the_cli() -> None:
    [entrypoint] = [json.loads(i.args) for i in FINAL if i.keyword == "ENTRYPOINT"]
    [command] = [json.loads(i.args) for i in FINAL if i.keyword == "CMD"]
    assert entrypoint == ["protoserve"] and command == [flags.SERVE]
    env = " ".join(i.args for i in FINAL if i.keyword == "ENV")
    names = {f.name for f in flags.FLAGS}
    for variable in re.findall(r"PROTOSERVE_(\w+)=", env):
        assert variable.lower().replace("_", "-") in names, variable
    assert f"{flags.MODEL_ENV}=/opt/models/demo" in env
    [expose] = [i.args.split() for i in FINAL if i.keyword == "EXPOSE"]
    defaults = {f.name: f.default for f in flags.FLAGS}
    assert sorted(map(int, expose)) == sorted([defaults["port"], defaults["grpc-port"]])


@pytest.mark.parametrize(
    "text,expected",
    [
        ("# c\nFROM a AS b\nRUN x \\\n  y\n", [("FROM", "a AS b"), ("RUN", "x y")]),
        ("ARG A=1\n\nENV B=2 \\\n    C=3\n", [("ARG", "A=1"), ("ENV", "B=2 C=3")]),
    ],
)
def test_parser(text, expected) -> None:
    assert [(i.keyword, i.args) for i in parse(text)] == expected
