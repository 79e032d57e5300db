"""What the pooling and scoring servicers share: a pooling model's facts and tokenizer,
the errors for an API the model cannot serve, running one engine request per input
concurrently, and tensors to protobuf."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import torch

from engine.pooling import CLASSIFY, EMBED, PoolingModelInfo, PoolingOutput, PoolingParams
from protoserve.common.v1 import output_pb2
from protoserve.pooling.v1 import pooling_pb2
from service.errors import Internal, InvalidArgument
from service.pooling_inputs import PoolingTokenizer
from service.registry import Capability, ServedModel
from service.request_meter import CANCELLED, FAILED

# Cohere input types -> the prompt names sentence-transformers models commonly use.
_INPUT_TYPE_PROMPTS = {
    "search_query": ("search_query", "query"),
    "search_document": ("search_document", "document", "passage"),
    "classification": ("classification",),
    "clustering": ("clustering",),
}


@dataclass(frozen=True)
class PoolingSupport:
    """ServedModel.pooling: set for models served by a pooling engine."""

    info: PoolingModelInfo
    tokenizer: PoolingTokenizer

    @property
    def capabilities(self) -> frozenset[Capability]:
        found = {Capability.TOKENIZE, Capability.POOL}
        if EMBED in self.info.tasks:
            found |= {Capability.EMBED, Capability.SCORE}  # bi-encoder: cosine scores
        if CLASSIFY in self.info.tasks:
            found.add(Capability.CLASSIFY)
        if self.info.is_cross_encoder:
            found.add(Capability.SCORE)
        return frozenset(found)


def pooling_of(model: ServedModel, capability: Capability, api: str) -> PoolingSupport:
    """The model's pooling support if it has `capability`, else UNIMPLEMENTED "The model
    does not support <api> API" (the bridge answers 501); RESOURCE_EXHAUSTED while its
    queue is full (ServedModel.admit)."""
    model.require(capability, api)
    model.admit()
    assert model.pooling is not None, "only pooling models have pooling capabilities"
    return model.pooling


def input_type_prefix(info: PoolingModelInfo, input_type: str) -> str:
    """The prompt prefix of a Cohere input type; INVALID_ARGUMENT if the model has none."""
    if not input_type:
        return ""
    for name in _INPUT_TYPE_PROMPTS.get(input_type, (input_type,)):
        if name in info.prompts:
            return info.prompts[name]
    known = sorted(info.prompts) or "none"
    raise InvalidArgument(
        f"Unsupported input_type: {input_type!r} (this model's input types: {known})",
        "input_type",
    )


async def run_pooling(
    model: ServedModel,
    request_id: str,
    prompts: list[list[int]],
    params: list[PoolingParams],
    priority: int = 0,
) -> list[PoolingOutput]:
    """One engine request per prompt (ids `<request_id>-<i>`), all in flight at once;
    outputs in prompt order. If one fails or the caller goes away, the rest are aborted."""
    tasks = [
        asyncio.ensure_future(_encode(model, f"{request_id}-{i}", ids, p, priority))
        for i, (ids, p) in enumerate(zip(prompts, params, strict=True))
    ]
    clock, outcome = model.meter.start(request_id, sum(map(len, prompts))), CANCELLED
    try:
        outputs = await asyncio.gather(*tasks)
        outcome = "stop"
    except Exception:
        outcome = FAILED
        raise
    finally:
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        model.meter.finish_pooling(clock, [len(p) for p in prompts], outcome)
    if any(o.data is None for o in outputs):  # aborted in the engine before it ran
        raise Internal("A pooling request was aborted before it ran.")
    return outputs


async def _encode(
    model: ServedModel, request_id: str, ids: list[int], params: PoolingParams, priority: int
) -> PoolingOutput:
    """The one output of a pooling request (AsyncEngine drives a PoolingEngine as it
    drives an LLMEngine: the stream of a pooling request has a single, final item)."""
    outputs = [o async for o in model.engine.generate(request_id, ids, params, priority=priority)]
    return outputs[-1]


def check_params(info: PoolingModelInfo, params: PoolingParams) -> None:
    """The request's parameters against the model, once, before any work."""
    info.check_params(params, 0)


def usage(prompts: list[list[int]] | int) -> output_pb2.Usage:
    """Pooling usage: prompt tokens only (a list of prompts, or their token count)."""
    tokens = prompts if isinstance(prompts, int) else sum(len(p) for p in prompts)
    return output_pb2.Usage(prompt_tokens=tokens, total_tokens=tokens)


def tensor(value: torch.Tensor) -> pooling_pb2.Tensor:
    return pooling_pb2.Tensor(shape=list(value.shape), values=value.reshape(-1).tolist())
