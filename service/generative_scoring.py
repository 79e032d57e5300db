"""Generative scoring on a generate model: after each (query, item) prompt, one decode
step; the score is the probability of the first label token, read from the engine's
logprobs of exactly the label ids (SamplingParams.logprob_token_ids: log_softmax of the
raw logits). apply_softmax renormalises over the label ids; else the full-vocabulary
probability."""

from __future__ import annotations

import asyncio
import math

from engine import RequestOutput, SamplingParams
from protoserve.scoring.v1 import scoring_pb2 as pb
from service.errors import Internal, InvalidArgument
from service.params import check_cache_salt
from service.prompts import check_context
from service.registry import ServedModel


def prompts_of(request: pb.GenerativeScoreRequest, model: ServedModel) -> list[list[int]]:
    """Token ids of query + item (item + query with item_first) for every item: texts are
    joined then tokenised, token ids concatenated; the two kinds cannot be mixed."""
    if not request.items:
        raise InvalidArgument("`items` must not be empty.", "items")
    kinds = {request.query.WhichOneof("value")} | {i.WhichOneof("value") for i in request.items}
    if None in kinds or len(kinds) != 1:
        raise InvalidArgument(
            "`query` and every item must all be text, or all be token ids.", "items"
        )
    special = request.add_special_tokens if request.HasField("add_special_tokens") else True
    out = []
    for item in request.items:
        first, second = (item, request.query) if request.item_first else (request.query, item)
        if kinds == {"text"}:
            ids = model.tokenizer.encode(first.text + second.text, add_special_tokens=special)
        else:
            ids = list(first.token_ids.ids) + list(second.token_ids.ids)
            _check_vocab(ids, model.vocab_size, "items")
        if not ids:
            raise InvalidArgument("A prompt is empty.", "items")
        check_context(len(ids), model.max_model_len)
        out.append(ids)
    return out


def label_ids_of(request: pb.GenerativeScoreRequest, model: ServedModel) -> tuple[int, ...]:
    labels = tuple(request.label_token_ids)
    if not labels:
        raise InvalidArgument("`label_token_ids` needs at least one token id.", "label_token_ids")
    _check_vocab(labels, model.vocab_size, "label_token_ids")
    return labels


async def generative_scores(
    model: ServedModel, request_id: str, request: pb.GenerativeScoreRequest
) -> tuple[list[float], int]:
    """(score per item, prompt tokens)."""
    prompts = prompts_of(request, model)
    labels = label_ids_of(request, model)
    params = SamplingParams(
        temperature=0.0, max_tokens=1, ignore_eos=True, logprobs=0, logprob_token_ids=labels
    )
    salt = check_cache_salt(request.cache_salt)
    tasks = [
        asyncio.ensure_future(
            _last_output(model, f"{request_id}-{i}", ids, params, request.priority, salt)
        )  # fmt: skip
        for i, ids in enumerate(prompts)
    ]
    try:
        outputs = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    softmax = request.apply_softmax if request.HasField("apply_softmax") else True
    return [_score(o, softmax) for o in outputs], sum(len(p) for p in prompts)


async def _last_output(
    model: ServedModel, request_id: str, ids: list[int], params, priority: int, salt
) -> RequestOutput:
    outputs = [
        o
        async for o in model.engine.generate(
            request_id, ids, params, priority=priority, cache_salt=salt
        )  # fmt: skip
    ]
    for output in outputs:
        if output.logprobs:
            return output
    raise Internal("A generative scoring request ended without a decode step (aborted).")


def _score(output: RequestOutput, softmax: bool) -> float:
    requested = output.logprobs[0].requested
    logprobs = [t.logprob for t in requested]
    if not softmax:
        return math.exp(logprobs[0])
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    return weights[0] / sum(weights)


def _check_vocab(ids, vocab_size: int, field: str) -> None:
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise InvalidArgument(f"Token id {bad[0]} is out of vocabulary (size {vocab_size}).", field)
