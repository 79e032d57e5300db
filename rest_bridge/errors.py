"""Every failure as the OpenAI/vLLM error JSON: one exception type, one mapping from
gRPC status, one place that renders it (HTTP body or SSE frame)."""

from __future__ import annotations

from http import HTTPStatus

import grpc
import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from google.rpc import error_details_pb2, status_pb2

log = structlog.get_logger(__name__)

STATUS_DETAILS_KEY = "grpc-status-details-bin"

# gRPC code -> (HTTP status, error type). RESOURCE_EXHAUSTED is admission control
# (queue full), which vLLM answers with 503 and a retry hint.
_FROM_GRPC: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "BadRequestError"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "BadRequestError"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "BadRequestError"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "AuthenticationError"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "PermissionDeniedError"),
    grpc.StatusCode.NOT_FOUND: (404, "NotFoundError"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "Conflict"),
    grpc.StatusCode.ABORTED: (409, "Conflict"),
    grpc.StatusCode.CANCELLED: (499, "ClientClosedRequest"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "NotImplementedError"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (503, "ServiceUnavailableError"),
    grpc.StatusCode.UNAVAILABLE: (503, "ServiceUnavailableError"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "GatewayTimeout"),
}


class APIError(Exception):
    def __init__(
        self, status: int, message: str, error_type: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = error_type or _default_type(status)
        self.param = param

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.status,
            }
        }


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, "BadRequestError", param)


def _default_type(status: int) -> str:
    if status == 400:
        return "BadRequestError"
    if status >= 500:
        return "InternalServerError"
    return HTTPStatus(status).phrase.replace(" ", "")


def from_grpc(error: grpc.aio.AioRpcError) -> APIError:
    status, error_type = _FROM_GRPC.get(error.code(), (500, "InternalServerError"))
    return APIError(status, error.details() or error.code().name, error_type, _field_of(error))


def _field_of(error: grpc.aio.AioRpcError) -> str | None:
    """The offending field, from the google.rpc.BadRequest detail the service attaches."""
    for key, value in error.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request) and bad_request.field_violations:
                return bad_request.field_violations[0].field
    return None


def as_api_error(exc: BaseException) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, grpc.aio.AioRpcError):
        return from_grpc(exc)
    log.exception("unhandled bridge error", error=repr(exc))
    return APIError(500, "Internal server error", "InternalServerError")


def error_response(exc: BaseException) -> JSONResponse:
    error = as_api_error(exc)
    headers = {"Retry-After": "1"} if error.status == 503 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def handle_exception(request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)
