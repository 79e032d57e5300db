"""GET /v1/models: one card per served name."""

from __future__ import annotations

from fastapi import APIRouter, Request

from protoserve.models.v1 import models_pb2
from rest_bridge import calls
from rest_bridge.grpc_client import GrpcClient

router = APIRouter()


def _card(name: str, info: models_pb2.ModelInfo) -> dict:
    return {
        "id": name,
        "object": "model",
        "created": info.created,
        "owned_by": "protoserve",
        "root": info.root,
        "parent": None,
        "max_model_len": info.max_model_len,
        "permission": [
            {
                "id": f"modelperm-{name}",
                "object": "model_permission",
                "created": info.created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }


@router.get("/v1/models")
async def list_models(request: Request) -> dict:
    client: GrpcClient = request.app.state.grpc
    [reply] = await calls.unary(request, [client.models.ListModels(models_pb2.ListModelsRequest())])
    return {
        "object": "list",
        "data": [_card(name, info) for info in reply.models for name in info.aliases],
    }
