"""service/faults.py: the test-only engine fault is inert without its variable and fails
the step once its trigger file exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.faults import ENGINE_FAULT_FILE_ENV, InjectedEngineFault, install_engine_fault


class _Core:
    def __init__(self) -> None:
        self.steps = 0

    def step(self) -> list:
        self.steps += 1
        return []


def test_without_the_variable_nothing_is_wrapped() -> None:
    core = _Core()
    original = core.step
    assert not install_engine_fault(core, env={})
    assert core.step == original


def test_the_step_fails_once_the_trigger_file_exists(tmp_path: Path) -> None:
    core, trigger = _Core(), tmp_path / "fail-now"
    assert install_engine_fault(core, env={ENGINE_FAULT_FILE_ENV: str(trigger)})
    assert core.step() == [] and core.steps == 1
    trigger.touch()
    with pytest.raises(InjectedEngineFault):
        core.step()
    assert core.steps == 1
