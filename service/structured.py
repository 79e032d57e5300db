"""The StructuredOutput message -> the engine's StructuredOutputSpec. The grammar itself
is compiled (and a malformed one refused, naming the field) by the engine's compiler,
which knows the tokenizer; here only the shape of the message is checked."""

from __future__ import annotations

import json

from engine.structured import StructuredOutputSpec
from protoserve.common.v1 import params_pb2
from service.errors import InvalidArgument

# proto oneof field -> vLLM's structured_outputs key (the engine's kind)
_KINDS = {
    "choice": "choice",
    "regex": "regex",
    "json_schema": "json",
    "grammar": "grammar",
    "json_object": "json_object",
    "structural_tag": "structural_tag",
}


def structured_spec(message: params_pb2.StructuredOutput) -> StructuredOutputSpec:
    field = message.WhichOneof("constraint")
    if field is None or (field == "json_object" and not message.json_object):
        raise InvalidArgument(
            "You must use one kind of structured outputs constraint but none was given.",
            "structured_outputs",
        )
    kind = _KINDS[field]
    if field == "choice":
        choices = list(message.choice.choices)
        if not choices:
            raise InvalidArgument(
                "choice must list at least one string.", "structured_outputs.choice"
            )
        value = json.dumps(choices)
    elif field == "json_object":
        value = ""
    else:
        value = getattr(message, field)
        if not value:
            raise InvalidArgument(f"{kind} must not be empty.", f"structured_outputs.{kind}")
    return StructuredOutputSpec(
        kind=kind,
        value=value,
        disable_any_whitespace=message.disable_any_whitespace,
        disable_additional_properties=message.disable_additional_properties,
        whitespace_pattern=message.whitespace_pattern or None,
    )
