"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded demo model, built once per test session (seconds)."""
    from service.demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")
