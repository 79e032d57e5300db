"""buf lint (STANDARD, see proto/buf.yaml) passes; runs where `make proto-lint`
installed buf (CI does), skipped elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / ".tools" / "node_modules" / ".bin" / "buf"


@pytest.mark.skipif(not BUF.exists(), reason="buf not installed (make proto-lint installs it)")
def test_buf_lint_standard(tmp_path: Path) -> None:
    image = tmp_path / "image.binpb"
    subprocess.run(
        [sys.executable, str(REPO / "proto" / "build.py"), "--descriptor-set", str(image)],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [str(BUF), "lint", str(image), "--path", "protoserve", "--config", "buf.yaml"],
        cwd=REPO / "proto",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
