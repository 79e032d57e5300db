"""examples/node: the Node.js client (@grpc/grpc-js, .proto files loaded at run time)
streams a chat and embeds a text with all-MiniLM-L6-v2 through Envoy, and decodes the
google.rpc.BadRequest of a refused request. `npm ci` runs from the committed lock file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import pytest
from envoy_stack import EMBED_MODEL, REPO, require_tool

from protoserve.common.v1 import chat_pb2, params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

EXAMPLE = REPO / "examples" / "node"


@pytest.fixture(scope="module")
def node_example() -> list[str]:
    node, npm = require_tool("node"), require_tool("npm")
    installed = EXAMPLE / "node_modules" / ".package-lock.json"
    lock = EXAMPLE / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=EXAMPLE,
            check=True,
            timeout=180,
        )
    return [node, str(EXAMPLE / "client.mjs")]


def test_node_client_through_envoy(front, node_example) -> None:
    target = front.envoy.grpc_target
    result = subprocess.run(
        [*node_example, "--target", target, "--model", "demo", "--prompt", "Hello!", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])

    with grpc.insecure_channel(target) as channel:
        reference = generate_pb2_grpc.GenerateServiceStub(channel).Chat(
            pb.ChatRequest(
                model="demo",
                messages=[chat_pb2.ChatMessage(role="user", content="Hello!")],
                sampling=params_pb2.SamplingParams(temperature=0),
                stopping=params_pb2.StoppingParams(max_tokens=16),
            ),
            timeout=30,
        )
    chat = summary["chat"]
    assert chat["ended"] and chat["text"] == reference.choices[0].message.content
    assert chat["usage"]["completion_tokens"] == reference.usage.completion_tokens
    embed = summary["embed"]  # all-MiniLM-L6-v2, the client's default --embed-model
    assert embed["model"] == EMBED_MODEL and embed["dimensions"] == 384, embed
    assert embed["norm"] == pytest.approx(1.0, abs=1e-5)
    invalid = summary["invalid"]
    assert invalid["code"] == "INVALID_ARGUMENT"
    [detail] = invalid["details"]
    assert detail["type"] == "google.rpc.BadRequest"
    assert detail["field_violations"][0]["field"] == "temperature"
