"""Operational endpoints: /health, /ping, /version."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from rest_bridge import convert
from rest_bridge.grpc_client import GrpcClient

router = APIRouter()


async def _health(request: Request) -> Response:
    client: GrpcClient = request.app.state.grpc
    return Response(status_code=200 if await client.is_serving() else 503)


router.add_api_route("/health", _health, methods=["GET"])
router.add_api_route("/ping", _health, methods=["GET"], name="ping")
router.add_api_route("/ping", _health, methods=["POST"], name="ping_post")


@router.get("/version")
async def version() -> dict:
    return {"version": convert.version()}
