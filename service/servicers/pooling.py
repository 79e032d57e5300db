"""PoolingService: Embed, Classify, Pool — one engine request per input, batched by the
pooling engine; inputs are texts, token ids or conversations."""

from __future__ import annotations

import grpc

from engine.pooling import (
    CLASSIFY,
    EMBED,
    TOKEN_CLASSIFY,
    TOKEN_EMBED,
    PoolingParams,
)
from protoserve.pooling.v1 import pooling_pb2 as pb
from protoserve.pooling.v1 import pooling_pb2_grpc
from service.interceptors import request_id_of
from service.pooling import (
    PoolingSupport,
    check_params,
    input_type_prefix,
    pooling_of,
    run_pooling,
    tensor,
    usage,
)
from service.pooling_inputs import encode_inputs
from service.registry import Capability, ModelRegistry, ServedModel

_TASKS = {
    pb.POOLING_TASK_EMBED: EMBED,
    pb.POOLING_TASK_CLASSIFY: CLASSIFY,
    pb.POOLING_TASK_TOKEN_EMBED: TOKEN_EMBED,
    pb.POOLING_TASK_TOKEN_CLASSIFY: TOKEN_CLASSIFY,
}


class PoolingServicer(pooling_pb2_grpc.PoolingServiceServicer):
    def __init__(self, registry: ModelRegistry):
        self._registry = registry

    async def Embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext):
        model = self._registry.get(request.model)
        support = pooling_of(model, Capability.EMBED, "Embeddings")
        params = PoolingParams(
            EMBED,
            _activation(request.options),
            request.dimensions if request.HasField("dimensions") else None,
        )
        prefix = input_type_prefix(support.info, request.input_type)
        request_id, prompts, outputs = await self._run(
            model, support, request, params, context, prefix
        )
        return pb.EmbedResponse(
            request_id=request_id,
            model=model.name,
            data=[pb.Embedding(index=i, embedding=tensor(o.data)) for i, o in enumerate(outputs)],
            usage=usage(prompts),
        )

    async def Classify(self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext):
        model = self._registry.get(request.model)
        support = pooling_of(model, Capability.CLASSIFY, "Classification")
        params = PoolingParams(CLASSIFY, _activation(request.options))
        request_id, prompts, outputs = await self._run(model, support, request, params, context)
        labels = support.info.labels
        data = []
        for i, output in enumerate(outputs):
            probs = output.data.tolist()
            best = max(range(len(probs)), key=probs.__getitem__)
            label = labels[best] if labels else ""
            data.append(
                pb.Classification(index=i, label=label, probs=probs, num_classes=len(probs))
            )
        return pb.ClassifyResponse(
            request_id=request_id, model=model.name, data=data, usage=usage(prompts)
        )

    async def Pool(self, request: pb.PoolRequest, context: grpc.aio.ServicerContext):
        model = self._registry.get(request.model)
        support = pooling_of(model, Capability.POOL, "Pooling")
        default = EMBED if EMBED in support.info.tasks else CLASSIFY
        params = PoolingParams(
            _TASKS.get(request.task, default),
            _activation(request.options),
            request.dimensions if request.HasField("dimensions") else None,
        )
        request_id, prompts, outputs = await self._run(model, support, request, params, context)
        return pb.PoolResponse(
            request_id=request_id,
            model=model.name,
            data=[pb.PoolOutput(index=i, data=tensor(o.data)) for i, o in enumerate(outputs)],
            usage=usage(prompts),
        )

    async def _run(
        self,
        model: ServedModel,
        support: PoolingSupport,
        request,
        params: PoolingParams,
        context: grpc.aio.ServicerContext,
        prefix: str = "",
    ):
        check_params(support.info, params)
        options = request.options
        prompts = encode_inputs(
            list(request.inputs), options, support.tokenizer, model.chat, model.max_model_len,
            prefix,
        )  # fmt: skip
        request_id = request_id_of(context, options.request_id)
        outputs = await run_pooling(
            model, request_id, prompts, [params] * len(prompts), options.priority
        )
        return request_id, prompts, outputs


def _activation(options: pb.PoolingOptions) -> bool | None:
    return options.use_activation if options.HasField("use_activation") else None
