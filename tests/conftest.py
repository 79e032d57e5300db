"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded demo model, built once per test session (seconds)."""
    from service.demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")


@pytest.fixture(scope="session")
def whisper_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Whisper speech demo model, built once per test session (seconds)."""
    from service.demo_whisper import build_whisper_model

    return build_whisper_model(tmp_path_factory.mktemp("models") / "whisper")
