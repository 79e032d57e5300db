"""The engine's error taxonomy. The service maps these to gRPC status codes in one place."""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidParameter(EngineError, ValueError):
    """A request parameter is out of range; `field` names it (e.g. "temperature")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class RequestAlreadyExists(EngineError, ValueError):
    """A request id is already in flight in this engine."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request id {request_id!r} is already in use")
        self.request_id = request_id


class UnsupportedModel(EngineError, ValueError):
    """The checkpoint's architecture (or one of its options) is not implemented."""


class EngineDeadError(EngineError, RuntimeError):
    """The step loop failed; every in-flight request fails and no new one is accepted."""
