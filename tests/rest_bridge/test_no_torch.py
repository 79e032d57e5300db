"""DESIGN rule 1: the bridge never imports torch, a tokenizer, the engine or the service."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import service.cli
from rest_bridge.app import create_app
from rest_bridge.settings import BridgeSettings
create_app(BridgeSettings())
heavy = [m for m in ("torch", "transformers", "tokenizers", "engine", "service.server")
         if m in sys.modules]
assert not heavy, heavy
print("ok")
"""


def test_bridge_and_cli_import_without_torch() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
