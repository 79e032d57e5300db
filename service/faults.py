"""Test-only fault injection, inert unless its environment variable is set.

PROTOSERVE_TEST_ENGINE_FAULT_FILE=PATH: once PATH exists, the next step of every engine
raises InjectedEngineFault, as a device error in a forward pass would. The e2e tests drive
the engine-failure path with it (in-flight requests fail with INTERNAL / 500, health turns
NOT_SERVING, the process exits non-zero). Without the variable nothing is wrapped, so the
step loop's hot path is untouched."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

ENGINE_FAULT_FILE_ENV = "PROTOSERVE_TEST_ENGINE_FAULT_FILE"


class InjectedEngineFault(RuntimeError):
    """Raised by an engine step once the fault file exists."""


class _Steppable(Protocol):
    def step(self) -> list: ...


def install_engine_fault(core: _Steppable, env: dict[str, str] | None = None) -> bool:
    """Wrap `core.step` when the variable is set; True if it did."""
    path = (os.environ if env is None else env).get(ENGINE_FAULT_FILE_ENV)
    if not path:
        return False
    trigger, step = Path(path), core.step

    def step_or_fail() -> list:
        if trigger.exists():
            raise InjectedEngineFault(f"injected engine fault ({ENGINE_FAULT_FILE_ENV})")
        return step()

    core.step = step_or_fail  # type: ignore[method-assign]
    return True
