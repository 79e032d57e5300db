"""The service's error taxonomy, and its one mapping to gRPC status codes.

Servicers raise these; `ErrorInterceptor` (service/interceptors.py) turns them into a
gRPC status whose message names the field, plus a google.rpc.BadRequest detail carrying
the field name, so the REST bridge can fill the OpenAI error's `param`.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ServiceError(Exception):
    """A failure the caller should see, with the gRPC code that describes it."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Internal(ServiceError):
    code = grpc.StatusCode.INTERNAL


def model_not_found(name: str, valid: list[str]) -> NotFound:
    return NotFound(
        f"The model `{name}` does not exist. Valid aliases: {', '.join(valid)}", field="model"
    )


def status_details(error: ServiceError) -> bytes:
    """google.rpc.Status bytes for the grpc-status-details-bin trailer."""
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    if error.field:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=error.field, description=error.message
                )
            ]
        )
        status.details.add().Pack(bad_request)
    return status.SerializeToString()
