"""ScoringService: Score and Rerank on pooling models (cross-encoders, bi-encoders);
GenerativeScore on generate models (service/generative_scoring.py)."""

from __future__ import annotations

import grpc

from protoserve.scoring.v1 import scoring_pb2 as pb
from protoserve.scoring.v1 import scoring_pb2_grpc
from service.generative_scoring import generative_scores
from service.interceptors import request_id_of
from service.pooling import pooling_of, usage
from service.registry import Capability, ModelRegistry
from service.scoring import score, texts_of


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, registry: ModelRegistry):
        self._registry = registry

    async def Score(self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext):
        model = self._registry.get(request.model)
        support = pooling_of(model, Capability.SCORE, "Score")
        request_id = request_id_of(context, request.options.pooling.request_id)
        result = await score(
            model, support, request_id,
            texts_of(list(request.queries), "queries"),
            texts_of(list(request.documents), "documents"),
            request.options,
        )  # fmt: skip
        return pb.ScoreResponse(
            request_id=request_id,
            model=model.name,
            data=[pb.ScoreResult(index=i, score=s) for i, s in enumerate(result.values)],
            usage=usage(result.prompt_tokens),
        )

    async def Rerank(self, request: pb.RerankRequest, context: grpc.aio.ServicerContext):
        model = self._registry.get(request.model)
        support = pooling_of(model, Capability.SCORE, "Rerank")
        request_id = request_id_of(context, request.options.pooling.request_id)
        [query] = texts_of([request.query], "query")
        result = await score(
            model, support, request_id, [query],
            texts_of(list(request.documents), "documents"), request.options,
        )  # fmt: skip
        order = sorted(range(len(result.values)), key=lambda i: -result.values[i])
        if request.top_n:
            order = order[: request.top_n]
        return pb.RerankResponse(
            request_id=request_id,
            model=model.name,
            results=[
                pb.RerankResult(
                    index=i, document=request.documents[i], relevance_score=result.values[i]
                )
                for i in order
            ],
            usage=usage(result.prompt_tokens),
        )

    async def GenerativeScore(
        self, request: pb.GenerativeScoreRequest, context: grpc.aio.ServicerContext
    ):
        model = self._registry.get(request.model)
        model.require(Capability.GENERATIVE_SCORE, "Generative Scoring")
        model.admit()
        request_id = request_id_of(context, request.request_id)
        scores, prompt_tokens = await generative_scores(model, request_id, request)
        return pb.GenerativeScoreResponse(
            request_id=request_id,
            model=model.name,
            data=[pb.ScoreResult(index=i, score=s) for i, s in enumerate(scores)],
            usage=usage(prompt_tokens),
        )
