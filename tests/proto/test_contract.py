"""Rules the contract keeps (DESIGN.md §3), checked on the compiled descriptors."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2

from protoserve.audio.v1 import audio_pb2
from protoserve.common.v1 import chat_pb2, output_pb2, params_pb2
from protoserve.generate.v1 import generate_pb2
from protoserve.metrics.v1 import metrics_pb2
from protoserve.models.v1 import models_pb2
from protoserve.pooling.v1 import pooling_pb2
from protoserve.responses.v1 import responses_pb2
from protoserve.scoring.v1 import scoring_pb2
from protoserve.tokenizer.v1 import tokenizer_pb2

FILES = [
    generate_pb2,
    pooling_pb2,
    scoring_pb2,
    tokenizer_pb2,
    audio_pb2,
    models_pb2,
    metrics_pb2,
    responses_pb2,
    chat_pb2,
    output_pb2,
    params_pb2,
]
SERVICES = [s for f in FILES for s in f.DESCRIPTOR.services_by_name.values()]


def test_every_concern_has_a_versioned_service() -> None:
    names = {s.full_name for s in SERVICES}
    assert names == {
        "protoserve.generate.v1.GenerateService",
        "protoserve.pooling.v1.PoolingService",
        "protoserve.scoring.v1.ScoringService",
        "protoserve.tokenizer.v1.TokenizerService",
        "protoserve.audio.v1.AudioService",
        "protoserve.models.v1.ModelsService",
        "protoserve.metrics.v1.MetricsService",
        "protoserve.responses.v1.ResponsesService",
    }


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_unary_and_server_streaming_rpcs_are_transcodable(service) -> None:
    for method in service.methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        if method.client_streaming:
            assert not rule.ListFields(), f"{method.full_name}: bidi RPCs are gRPC only"
            continue
        path = rule.get or rule.post
        assert path.startswith("/api/v1/"), f"{method.full_name} lacks a google.api.http rule"


def test_enum_zero_values_are_unspecified() -> None:
    for module in FILES:
        enums = list(module.DESCRIPTOR.enum_types_by_name.values())
        enums += [e for m in module.DESCRIPTOR.message_types_by_name.values() for e in m.enum_types]
        for enum in enums:
            assert enum.values[0].number == 0 and enum.values[0].name.endswith("_UNSPECIFIED")


def test_knobs_with_nonzero_defaults_are_optional() -> None:
    """A sample of knobs whose real default is not proto3's zero value."""
    knobs = {
        params_pb2.SamplingParams: ["temperature", "top_p", "top_k", "n", "seed", "length_penalty"],
        params_pb2.PenaltyParams: ["repetition_penalty"],
        params_pb2.StoppingParams: ["max_tokens"],
        params_pb2.OutputOptions: [
            "skip_special_tokens",
            "spaces_between_special_tokens",
            "logprobs",
        ],
        chat_pb2.ChatTemplateOptions: ["add_generation_prompt"],
        generate_pb2.ChatRequest: ["parallel_tool_calls", "include_reasoning"],
    }
    for message, names in knobs.items():
        for name in names:
            field = message.DESCRIPTOR.fields_by_name[name]
            assert field.has_presence and not field.is_repeated, name


def test_prompt_is_text_or_token_ids() -> None:
    oneof = generate_pb2.GenerateRequest.DESCRIPTOR.oneofs_by_name["prompt"]
    assert [f.name for f in oneof.fields] == ["text", "token_ids"]
