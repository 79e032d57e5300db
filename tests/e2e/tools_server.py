"""The tools server of the e2e tests: `protoserve serve` with the demo model as `demo`,
rendered with a Qwen3 chat template (tools, <tool_call>, <think>), auto tool choice
with the hermes parser, the qwen3 reasoning parser and a tool-parser plugin loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.launch import Servers, serving

DATA = Path(__file__).parent.parent / "data"
TEMPLATE = DATA / "chat_templates" / "qwen3.jinja"
PLUGIN = DATA / "tool_parser_plugin.py"
MAX_MODEL_LEN = 2048  # the Qwen3 tools preamble alone is ~450 demo tokens


def serve_tools(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    log_path = tmp_path_factory.mktemp("logs") / "tools.log"
    with serving(
        [f"demo={model_dir}"], log_path,
        "--chat-template", str(TEMPLATE),
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
        "--tool-parser-plugin", str(PLUGIN), "--reasoning-parser", "qwen3",
        "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", "16",
    ) as servers:  # fmt: skip
        yield servers
