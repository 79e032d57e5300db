"""POST /v1/embeddings (OpenAI) and POST /v2/embed (Cohere embed v2) onto
PoolingService.Embed: one RPC for every input of the request."""

from __future__ import annotations

import json
from typing import Any, Literal

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from protoserve.common.v1 import params_pb2
from protoserve.pooling.v1 import pooling_pb2 as pb
from rest_bridge import calls, convert, tensors
from rest_bridge.body import parse_json
from rest_bridge.errors import bad_request, from_grpc
from rest_bridge.grpc_client import GrpcClient, metadata
from rest_bridge.openapi import json_body
from rest_bridge.pooling import InputFields, encoded, usage
from rest_bridge.sampling import Int32, Int64

router = APIRouter()


class EmbeddingRequest(InputFields):
    encoding_format: Literal["float", "base64", "bytes", "bytes_only"] = "float"
    dimensions: Int32 | None = None
    embed_dtype: tensors.EmbedDtype = "float32"
    endianness: tensors.Endianness = "native"


async def _embed(request: Request, message: pb.EmbedRequest, request_id: str) -> pb.EmbedResponse:
    client: GrpcClient = request.app.state.grpc
    [reply] = await calls.unary(
        request, [client.pooling.Embed(message, metadata=metadata(request_id, request))]
    )
    return reply


@router.post("/v1/embeddings", openapi_extra=json_body(EmbeddingRequest))
async def create_embeddings(request: Request):
    req = await parse_json(request, EmbeddingRequest)
    req.check_removed_fields()
    request_id = convert.request_id(request, req.request_id)
    message = pb.EmbedRequest(
        model=req.model or "",
        inputs=req.inputs(),
        options=req.options(request_id, req.add_special_tokens),
        dimensions=req.dimensions,
    )
    reply = await _embed(request, message, request_id)
    header = {"id": f"embd-{request_id}", "created": convert.now(), "model": reply.model}
    if req.encoding_format in ("bytes", "bytes_only"):
        return _bytes_response(req, header, reply)
    # OpenAI's base64 is little-endian float32 (what its SDK decodes); "native" means that
    # on every host the bridge runs on (x86-64, arm64), and the explicit orders are kept.
    data = [
        {
            "index": item.index,
            "object": "embedding",
            "embedding": encoded(
                item.embedding, req.encoding_format, req.embed_dtype, req.endianness
            ),
        }
        for item in reply.data
    ]
    return JSONResponse({**header, "object": "list", "data": data, "usage": usage(reply.usage)})


def _bytes_response(req: EmbeddingRequest, header: dict, reply: pb.EmbedResponse) -> Response:
    """The arrays back to back; `bytes` describes them in a `metadata` header."""
    chunks, items, offset = [], [], 0
    for item in reply.data:
        raw = tensors.to_bytes(tensors.array(item.embedding), req.embed_dtype, req.endianness)
        chunks.append(raw)
        items.append({
            "index": item.index, "embed_dtype": req.embed_dtype, "endianness": req.endianness,
            "start": offset, "end": offset + len(raw), "shape": list(item.embedding.shape),
        })  # fmt: skip
        offset += len(raw)
    headers = None
    if req.encoding_format == "bytes":
        meta = {**header, "data": items, "usage": usage(reply.usage)}
        headers = {"metadata": json.dumps(meta, separators=(",", ":"))}
    return Response(b"".join(chunks), media_type="application/octet-stream", headers=headers)


# -- Cohere embed v2 ---------------------------------------------------------------------
_COHERE_TYPES = ("float", "int8", "uint8", "binary", "ubinary", "base64")


class _CohereContent(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class _CohereInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    content: list[_CohereContent]


class CohereEmbedRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    texts: list[str] | None = None
    images: list[str] | None = None
    inputs: list[_CohereInput] | None = None
    input_type: str | None = None
    embedding_types: list[str] = Field(default_factory=lambda: ["float"])
    output_dimension: Int32 | None = None
    truncate: Literal["NONE", "START", "END"] = "END"
    max_tokens: Int32 | None = Field(default=None, ge=1)
    priority: Int64 = 0


def _cohere_texts(req: CohereEmbedRequest) -> list[str]:
    given = [name for name in ("texts", "images", "inputs") if getattr(req, name)]
    if len(given) != 1:
        raise bad_request("Exactly one of `texts`, `images` or `inputs` must be given "
                          "(and not empty).", "texts")  # fmt: skip
    if req.images:
        raise bad_request("Image inputs are not supported by this model.", "images")
    if req.texts:
        return list(req.texts)
    texts = []
    for item in req.inputs or []:
        if any(part.type != "text" for part in item.content):
            raise bad_request("Only text content is supported by this model.", "inputs")
        texts.append("\n".join(part.text or "" for part in item.content))
    return texts


def _cohere_options(req: CohereEmbedRequest, request_id: str) -> pb.PoolingOptions:
    options = pb.PoolingOptions(priority=req.priority, request_id=request_id)
    if req.truncate == "NONE":
        if req.max_tokens is not None:
            options.max_input_tokens = req.max_tokens
        return options
    prompt = options.prompt_options
    prompt.truncate_prompt_tokens = req.max_tokens if req.max_tokens is not None else -1
    # END cuts the end (keeps the first tokens), START the start.
    prompt.truncation_side = (
        params_pb2.TRUNCATION_SIDE_LEFT
        if req.truncate == "START"
        else params_pb2.TRUNCATION_SIDE_RIGHT
    )
    return options


def _by_type(kind: str, values: list) -> Any:
    if kind == "float":
        return [v.tolist() for v in values]
    if kind == "base64":
        return [tensors.to_base64(v) for v in values]
    if kind in ("binary", "ubinary") and values and values[0].shape[-1] % 8:
        raise bad_request(
            f"embedding type {kind!r} needs a dimension divisible by 8, got {values[0].shape[-1]}.",
            "embedding_types",
        )
    return [getattr(tensors, kind)(v) for v in values]


@router.post("/v2/embed", openapi_extra=json_body(CohereEmbedRequest))
async def cohere_embed(request: Request) -> dict:
    req = await parse_json(request, CohereEmbedRequest)
    texts = _cohere_texts(req)
    unknown = [t for t in req.embedding_types if t not in _COHERE_TYPES]
    if unknown or not req.embedding_types:
        raise bad_request(f"embedding_types must be among {list(_COHERE_TYPES)}, got "
                          f"{req.embedding_types}.", "embedding_types")  # fmt: skip
    request_id = convert.request_id(request, None)
    message = pb.EmbedRequest(
        model=req.model or "",
        inputs=[pb.PoolingInput(text=t) for t in texts],
        options=_cohere_options(req, request_id),
        dimensions=req.output_dimension,
        input_type=req.input_type or "",
    )
    try:
        reply = await _embed(request, message, request_id)
    except grpc.aio.AioRpcError as exc:  # truncate "NONE" + max_tokens: Cohere's name for it
        error = from_grpc(exc)
        if error.param != "max_input_tokens":
            raise
        error.param = "max_tokens"
        raise error from exc
    values = [tensors.array(item.embedding) for item in reply.data]
    return {
        "id": f"embd-{request_id}",
        "embeddings": {kind: _by_type(kind, values) for kind in dict.fromkeys(req.embedding_types)},
        "texts": texts,
        "meta": {
            "api_version": {"version": "2"},
            "billed_units": {"input_tokens": reply.usage.prompt_tokens, "image_tokens": 0},
        },
        "response_type": "embeddings_by_type",
    }
