"""The committed generated code equals what `make proto` produces now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _build_module():
    spec = importlib.util.spec_from_file_location("proto_build", REPO / "proto" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    build = _build_module()
    build.generate(tmp_path)
    fresh = build.generated_files(tmp_path)
    committed = build.generated_files(REPO / "proto")
    assert fresh, "protoc generated nothing"
    stale = sorted(p for p in fresh.keys() | committed.keys() if fresh.get(p) != committed.get(p))
    assert not stale, f"generated code is stale, run `make proto`: {stale}"
