"""Scores of (query, document) pairs on a pooling model: a cross-encoder reads each pair
in one pass (sigmoid of its one logit), a bi-encoder embeds both sides and takes the
cosine. Pairing is 1:1, 1:N (the query broadcast) or N:N (zipped)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.pooling import CLASSIFY, EMBED, PoolingParams
from protoserve.scoring.v1 import scoring_pb2 as pb
from service.errors import InvalidArgument
from service.pooling import PoolingSupport, run_pooling
from service.pooling_inputs import Truncation, check_length, truncation_of
from service.registry import ServedModel


@dataclass(frozen=True)
class Scores:
    values: list[float]  # pair order
    prompt_tokens: int


def texts_of(inputs: list[pb.ScoreInput], field: str) -> list[str]:
    """Texts of score inputs; content parts must all be text on a text-only model."""
    texts = []
    for item in inputs:
        if item.WhichOneof("input") != "content":
            texts.append(item.text)
            continue
        kinds = {p.WhichOneof("part") for p in item.content.parts}
        if kinds - {"text"}:
            raise InvalidArgument(
                f"Multimodal inputs are not supported by this model (a `{field}` item has "
                f"{sorted(k or 'empty' for k in kinds - {'text'})} parts).",
                field,
            )
        texts.append("\n".join(p.text for p in item.content.parts))
    return texts


def pair_indices(num_queries: int, num_documents: int) -> list[tuple[int, int]]:
    if num_queries == 0 or num_documents == 0:
        side = "queries" if num_queries == 0 else "documents"
        raise InvalidArgument(f"At least one of `{side}` is required.", side)
    if num_queries == 1:
        return [(0, d) for d in range(num_documents)]
    if num_queries == num_documents:
        return [(i, i) for i in range(num_queries)]
    raise InvalidArgument(
        "Input lengths must be either 1:1, 1:N or N:N, got "
        f"{num_queries} queries and {num_documents} documents.",
        "documents",
    )


def check_options(options: pb.ScoreOptions) -> None:
    """Score templates are not served: refuse their inputs rather than ignore them."""
    if options.instruction:
        raise InvalidArgument(
            "`instruction` needs a score template, which this server does not support.",
            "instruction",
        )
    if options.HasField("chat_template_kwargs"):
        raise InvalidArgument(
            "`chat_template_kwargs` needs a score template, which this server does not support.",
            "chat_template_kwargs",
        )


async def score(
    model: ServedModel,
    support: PoolingSupport,
    request_id: str,
    queries: list[str],
    documents: list[str],
    options: pb.ScoreOptions,
) -> Scores:
    check_options(options)
    pairs = pair_indices(len(queries), len(documents))
    pooling = options.pooling
    truncation = truncation_of(pooling.prompt_options, model.max_model_len)
    activation = pooling.use_activation if pooling.HasField("use_activation") else None
    if support.info.is_cross_encoder:
        return await _cross_encode(
            model, support, request_id, [(queries[q], documents[d]) for q, d in pairs],
            truncation, options, activation,
        )  # fmt: skip
    return await _bi_encode(model, support, request_id, queries, documents, pairs, truncation,
                            options)  # fmt: skip


async def _cross_encode(
    model: ServedModel,
    support: PoolingSupport,
    request_id: str,
    pairs: list[tuple[str, str]],
    truncation: Truncation,
    options: pb.ScoreOptions,
    activation: bool | None,
) -> Scores:
    encoded = support.tokenizer.encode_pairs(
        [q for q, _ in pairs], [d for _, d in pairs], truncation,
        options.max_tokens_per_query, options.max_tokens_per_doc,
    )  # fmt: skip
    with_types = support.info.type_vocab_size > 1
    prompts, params = [], []
    for i, (ids, types) in enumerate(encoded):
        check_length(ids, model.max_model_len, i)
        prompts.append(ids)
        params.append(
            PoolingParams(CLASSIFY, activation, None, tuple(types) if with_types else None)
        )
    outputs = await run_pooling(model, request_id, prompts, params, options.pooling.priority)
    return Scores([float(o.data[0]) for o in outputs], sum(len(p) for p in prompts))


async def _bi_encode(
    model: ServedModel,
    support: PoolingSupport,
    request_id: str,
    queries: list[str],
    documents: list[str],
    pairs: list[tuple[int, int]],
    truncation: Truncation,
    options: pb.ScoreOptions,
) -> Scores:
    """Each text embedded once (a broadcast query too), both sides in one batch."""
    special = options.pooling.prompt_options
    add_special = special.add_special_tokens if special.HasField("add_special_tokens") else True
    sides = []
    for texts, per_side in ((queries, options.max_tokens_per_query),
                            (documents, options.max_tokens_per_doc)):  # fmt: skip
        side_truncation = _tighter(truncation, per_side)
        sides.append(support.tokenizer.encode_texts(texts, add_special, side_truncation))
    prompts = sides[0] + sides[1]
    for i, ids in enumerate(prompts):
        check_length(ids, model.max_model_len, i)
    params = [PoolingParams(EMBED, use_activation=True)] * len(prompts)
    outputs = await run_pooling(model, request_id, prompts, params, options.pooling.priority)
    vectors = torch.stack([o.data.reshape(-1) for o in outputs])
    q_index = torch.tensor([q for q, _ in pairs])
    d_index = torch.tensor([len(queries) + d for _, d in pairs])
    cosine = torch.nn.functional.cosine_similarity(vectors[q_index], vectors[d_index], dim=-1)
    return Scores(cosine.tolist(), sum(len(p) for p in prompts))


def _tighter(truncation: Truncation, per_side: int) -> Truncation:
    if not per_side:
        return truncation
    if truncation.limit is None or per_side < truncation.limit:
        return Truncation(per_side, truncation.keep_first)
    return truncation
