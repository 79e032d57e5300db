"""POST /score, /v1/score (pair scores) and /rerank, /v1/rerank, /v2/rerank (Jina and
Cohere shapes) onto ScoringService.Score / Rerank; POST /generative_scoring onto
ScoringService.GenerativeScore."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from protoserve.common.v1 import chat_pb2, output_pb2
from protoserve.scoring.v1 import scoring_pb2 as pb
from rest_bridge import calls, convert
from rest_bridge.body import parse_json
from rest_bridge.errors import bad_request
from rest_bridge.grpc_client import GrpcClient, metadata
from rest_bridge.openapi import json_body
from rest_bridge.pooling import PoolingFields
from rest_bridge.sampling import Int32, Int64, NonNegativeInt32, TokenId

router = APIRouter()

# (queries field, documents field), in the order they are looked for.
_PAIR_FIELDS = (("queries", "documents"), ("queries", "items"), ("data_1", "data_2"),
                ("text_1", "text_2"))  # fmt: skip


class ScoreFields(PoolingFields):
    # Constraints inside Annotated: a Field(ge=0) default would lose to Int32's own bound.
    max_tokens_per_query: NonNegativeInt32 = 0
    max_tokens_per_doc: NonNegativeInt32 = 0
    instruction: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    def score_options(self, request_id: str) -> pb.ScoreOptions:
        options = pb.ScoreOptions(
            pooling=self.options(request_id),
            max_tokens_per_query=self.max_tokens_per_query,
            max_tokens_per_doc=self.max_tokens_per_doc,
            instruction=self.instruction or "",
        )
        if self.chat_template_kwargs:
            options.chat_template_kwargs.update(self.chat_template_kwargs)
        return options


class ScoreRequest(ScoreFields):
    queries: Any = None
    documents: Any = None
    items: Any = None
    data_1: Any = None
    data_2: Any = None
    text_1: Any = None
    text_2: Any = None


class RerankRequest(ScoreFields):
    query: Any = None
    documents: list[Any] | None = None
    top_n: NonNegativeInt32 = 0
    return_documents: bool | None = None
    # Cohere fields vLLM accepts and ignores: documents are scored whole.
    rank_fields: list[str] | None = None
    max_chunks_per_doc: Int32 | None = None


def score_input(value: Any, field: str) -> pb.ScoreInput:
    """A string, {"content": [parts]} (multimodal form), or {"text": ...} (Cohere v1)."""
    if isinstance(value, str):
        return pb.ScoreInput(text=value)
    if isinstance(value, dict) and isinstance(value.get("content"), list):
        parts = []
        for part in value["content"]:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request(
                    "Multimodal inputs are not supported by this model (text parts only).", field
                )
            parts.append(chat_pb2.ContentPart(text=str(part.get("text") or "")))
        return pb.ScoreInput(content=pb.MultiModal(parts=parts))
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return pb.ScoreInput(text=value["text"])
    raise bad_request(f'`{field}` items must be strings or {{"content": [...]}} objects.', field)


def _side(value: Any, field: str) -> list[pb.ScoreInput]:
    items = value if isinstance(value, list) else [value]
    return [score_input(v, field) for v in items]


def _sides(req: ScoreRequest) -> tuple[list[pb.ScoreInput], list[pb.ScoreInput]]:
    for first, second in _PAIR_FIELDS:
        a, b = getattr(req, first), getattr(req, second)
        if a is not None or b is not None:
            if a is None or b is None:
                raise bad_request(f"`{first}` and `{second}` go together.", first)
            return _side(a, first), _side(b, second)
    raise bad_request("`queries` and `documents` are required.", "queries")


def score_usage(usage) -> dict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.total_tokens,
        "completion_tokens": 0,
        "prompt_tokens_details": None,
    }


@router.post("/score", openapi_extra=json_body(ScoreRequest))
@router.post("/v1/score", openapi_extra=json_body(ScoreRequest))
async def create_score(request: Request) -> dict:
    req = await parse_json(request, ScoreRequest)
    req.check_removed_fields()
    request_id = convert.request_id(request, req.request_id)
    queries, documents = _sides(req)
    message = pb.ScoreRequest(
        model=req.model or "",
        queries=queries,
        documents=documents,
        options=req.score_options(request_id),
    )
    client: GrpcClient = request.app.state.grpc
    [reply] = await calls.unary(
        request, [client.scoring.Score(message, metadata=metadata(request_id, request))]
    )
    return {
        "id": f"score-{request_id}",
        "object": "list",
        "created": convert.now(),
        "model": reply.model,
        "data": [{"index": r.index, "object": "score", "score": r.score} for r in reply.data],
        "usage": score_usage(reply.usage),
    }


def _document(item: pb.ScoreInput) -> dict:
    if item.WhichOneof("input") == "content":
        return {"multi_modal": [{"type": "text", "text": p.text} for p in item.content.parts]}
    return {"text": item.text}


@router.post("/rerank", openapi_extra=json_body(RerankRequest))
@router.post("/v1/rerank", openapi_extra=json_body(RerankRequest))
@router.post("/v2/rerank", openapi_extra=json_body(RerankRequest))
async def create_rerank(request: Request) -> dict:
    req = await parse_json(request, RerankRequest)
    req.check_removed_fields()
    if req.query is None or req.documents is None:
        raise bad_request("`query` and `documents` are required.", "query")
    request_id = convert.request_id(request, req.request_id)
    message = pb.RerankRequest(
        model=req.model or "",
        query=score_input(req.query, "query"),
        documents=[score_input(d, "documents") for d in req.documents],
        top_n=req.top_n,
        options=req.score_options(request_id),
    )
    client: GrpcClient = request.app.state.grpc
    [reply] = await calls.unary(
        request, [client.scoring.Rerank(message, metadata=metadata(request_id, request))]
    )
    results = []
    for result in reply.results:
        item: dict[str, Any] = {"index": result.index}
        if req.return_documents is not False:
            item["document"] = _document(result.document)
        item["relevance_score"] = result.relevance_score
        results.append(item)
    version = "2" if request.url.path.startswith("/v2/") else "1"
    return {
        "id": f"score-{request_id}",
        "model": reply.model,
        "usage": {
            "prompt_tokens": reply.usage.prompt_tokens,
            "total_tokens": reply.usage.total_tokens,
        },  # fmt: skip
        "results": results,
        "meta": {
            "api_version": {"version": version},
            "billed_units": {"search_units": search_units(len(req.documents))},
        },
    }


def search_units(num_documents: int) -> int:
    """Cohere bills one search unit per query with up to 100 documents, a document longer
    than its context counting once per chunk. Documents are scored whole here (truncated
    or refused, never chunked), so each counts once: ceil(documents / 100), at least 1."""
    return max(1, -(-num_documents // 100))


class GenerativeScoreRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    query: str | list[TokenId]
    items: list[str] | list[list[TokenId]]
    label_token_ids: list[TokenId]
    apply_softmax: bool = True
    item_first: bool = False
    add_special_tokens: bool = True
    cache_salt: str | None = None
    priority: Int64 = 0
    request_id: str | None = None


def _text_or_tokens(value: str | list[int]) -> pb.TextOrTokens:
    if isinstance(value, str):
        return pb.TextOrTokens(text=value)
    return pb.TextOrTokens(token_ids=output_pb2.TokenIds(ids=value))


@router.post("/generative_scoring", openapi_extra=json_body(GenerativeScoreRequest))
async def create_generative_score(request: Request) -> dict:
    req = await parse_json(request, GenerativeScoreRequest)
    request_id = convert.request_id(request, req.request_id)
    message = pb.GenerativeScoreRequest(
        model=req.model or "",
        query=_text_or_tokens(req.query),
        items=[_text_or_tokens(i) for i in req.items],
        label_token_ids=req.label_token_ids,
        apply_softmax=req.apply_softmax,
        item_first=req.item_first,
        add_special_tokens=req.add_special_tokens,
        cache_salt=req.cache_salt or "",
        priority=req.priority,
        request_id=request_id,
    )
    client: GrpcClient = request.app.state.grpc
    call = client.scoring.GenerativeScore(message, metadata=metadata(request_id, request))
    [reply] = await calls.unary(request, [call])
    return {
        "id": f"score-{request_id}",
        "object": "list",
        "created": convert.now(),
        "model": reply.model,
        "data": [{"index": r.index, "object": "score", "score": r.score} for r in reply.data],
        "usage": score_usage(reply.usage),
    }
