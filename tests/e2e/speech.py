"""The speech server of the e2e tests: `protoserve serve` with the tiny Whisper demo as
`whisper` (beside nothing else), small stream limits, on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.launch import Servers, serving

MAX_STREAM_SECONDS = 600  # --max-stream-duration: a test passes it


def serve_speech(
    model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    extra_args: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> Iterator[Servers]:
    log_path = tmp_path_factory.mktemp("logs") / "speech.log"
    with serving(
        [f"whisper={model_dir}"], log_path,
        "--max-num-seqs", "16", "--max-stream-duration", str(MAX_STREAM_SECONDS), *extra_args,
        env=extra_env,
    ) as servers:  # fmt: skip
        yield servers
