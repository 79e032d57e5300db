"""ModelsService: what is served and what each model can do."""

from __future__ import annotations

import grpc

from protoserve.models.v1 import models_pb2 as pb
from protoserve.models.v1 import models_pb2_grpc
from service.errors import InvalidArgument
from service.registry import Capability, ModelRegistry, ServedModel

_CAPABILITY = {
    Capability.GENERATE: pb.CAPABILITY_GENERATE,
    Capability.CHAT: pb.CAPABILITY_CHAT,
    Capability.TOKENIZE: pb.CAPABILITY_TOKENIZE,
    Capability.EMBED: pb.CAPABILITY_EMBED,
    Capability.CLASSIFY: pb.CAPABILITY_CLASSIFY,
    Capability.POOL: pb.CAPABILITY_POOL,
    Capability.SCORE: pb.CAPABILITY_SCORE,
    Capability.GENERATIVE_SCORE: pb.CAPABILITY_GENERATIVE_SCORE,
    Capability.TRANSCRIBE: pb.CAPABILITY_TRANSCRIBE,
    Capability.TRANSLATE: pb.CAPABILITY_TRANSLATE,
}


class ModelsServicer(models_pb2_grpc.ModelsServiceServicer):
    def __init__(self, registry: ModelRegistry):
        self._registry = registry

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[model_info(m) for m in self._registry.all()])

    async def GetModel(
        self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        if not request.name:
            raise InvalidArgument("name must not be empty.", field="name")
        return model_info(self._registry.get(request.name))


def model_info(model: ServedModel) -> pb.ModelInfo:
    stats = model.engine.stats()
    return pb.ModelInfo(
        name=model.name,
        aliases=model.names,
        root=model.root,
        created=model.created,
        max_model_len=model.max_model_len,
        vocab_size=model.vocab_size,
        architecture=model.architecture,
        dtype=model.dtype,
        capabilities=sorted(_CAPABILITY[c] for c in model.capabilities),
        stats=pb.RuntimeStats(
            num_running=stats.num_running,
            num_waiting=stats.num_waiting,
            kv_blocks_total=stats.num_kv_blocks_total,
            kv_blocks_free=stats.num_kv_blocks_free,
            block_size=stats.block_size,
            kv_blocks_cached=stats.num_kv_blocks_cached,
            prefix_cache_queries=stats.prefix_cache_queries,
            prefix_cache_hits=stats.prefix_cache_hits,
            tokens_computed=stats.num_tokens_computed,
        ),
        eos_token_ids=sorted(model.eos_token_ids),
    )
