"""The body of POST /v1/responses (OpenAI's fields and vLLM's extras) to a
CreateResponseRequest: input items, function tools, tool_choice, text.format, sampling.
Shapes only; the service checks ranges and meaning, naming the field."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from protoserve.common.v1 import chat_pb2, params_pb2
from protoserve.responses.v1 import responses_pb2 as pb
from rest_bridge import sampling
from rest_bridge.errors import bad_request
from rest_bridge.sampling import Int32, Int64, TokenId

_MODES = {
    "none": chat_pb2.ToolChoice.MODE_NONE,
    "auto": chat_pb2.ToolChoice.MODE_AUTO,
    "required": chat_pb2.ToolChoice.MODE_REQUIRED,
}
_TRUNCATION = {
    None: pb.TRUNCATION_UNSPECIFIED,
    "disabled": pb.TRUNCATION_DISABLED,
    "auto": pb.TRUNCATION_AUTO,
}
CONSTRAINT_KEYS = ("choice", "regex", "json", "grammar", "json_object", "structural_tag")
# Defined by OpenAI, refused here (the service refuses the rest, e.g. background).
_REFUSED = {
    "prompt": "stored prompt templates (`prompt`) are not supported.",
    "conversation": "conversations (`conversation`) are not supported; use previous_response_id.",
}


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    max_output_tokens: Int32 | None = None
    max_tool_calls: Int32 | None = None
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    store: bool | None = None
    stream: bool | None = False
    background: bool | None = False
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: Int32 | None = None
    logit_bias: dict[str, float] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    text: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    user: str | None = None
    prompt: Any = None
    conversation: Any = None
    # vLLM extras
    top_k: Int32 | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    seed: Int64 | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[TokenId] | None = None
    ignore_eos: bool = False
    include_stop_str_in_output: bool = False
    include_reasoning: bool | None = None
    request_id: str | None = None
    priority: Int64 = 0
    cache_salt: str | None = None
    structured_outputs: dict[str, Any] | None = None


def grpc_request(req: ResponsesRequest, request_id: str) -> pb.CreateResponseRequest:
    for name, message in _REFUSED.items():
        if getattr(req, name) is not None:
            raise bad_request(message, name)
    out = pb.CreateResponseRequest(
        model=req.model or "",
        instructions=req.instructions or "",
        max_output_tokens=req.max_output_tokens,
        sampling=params_pb2.SamplingParams(
            temperature=req.temperature,
            top_p=req.top_p,
            top_k=req.top_k,
            min_p=req.min_p,
            seed=req.seed,
        ),
        penalties=params_pb2.PenaltyParams(
            presence_penalty=req.presence_penalty or 0.0,
            frequency_penalty=req.frequency_penalty or 0.0,
            repetition_penalty=req.repetition_penalty,
            logit_bias=sampling.logit_bias_map(req.logit_bias),
        ),
        stopping=params_pb2.StoppingParams(
            stop=sampling.stop_strings(req.stop),
            stop_token_ids=req.stop_token_ids,
            ignore_eos=req.ignore_eos,
            include_stop_str_in_output=req.include_stop_str_in_output,
        ),
        tools=[_tool(i, t) for i, t in enumerate(req.tools or [])],
        parallel_tool_calls=req.parallel_tool_calls,
        previous_response_id=req.previous_response_id or "",
        store=req.store,
        background=bool(req.background),
        reasoning=_reasoning(req.reasoning),
        top_logprobs=req.top_logprobs or 0,
        truncation=_TRUNCATION[req.truncation],
        include=req.include or [],
        metadata=req.metadata or {},
        user=req.user or "",
        include_reasoning=req.include_reasoning,
        priority=req.priority,
        request_id=request_id,
        cache_salt=req.cache_salt or "",
    )
    _set_input(out, req.input)
    if req.max_tool_calls is not None:
        out.max_tool_calls = req.max_tool_calls
    if req.tool_choice is not None:
        out.tool_choice.CopyFrom(_tool_choice(req.tool_choice))
    out.text_format.CopyFrom(text_format(req.text))
    if req.structured_outputs is not None:
        out.structured_output.CopyFrom(_structured_outputs(req.structured_outputs))
    return out


def _structured_outputs(spec: dict[str, Any]) -> params_pb2.StructuredOutput:
    """vLLM's structured_outputs: a constraint, or only options for text.format's."""
    if any(spec.get(k) not in (None, False) for k in CONSTRAINT_KEYS):
        return sampling.structured_constraint(spec)
    return params_pb2.StructuredOutput(
        disable_any_whitespace=bool(spec.get("disable_any_whitespace")),
        disable_additional_properties=bool(spec.get("disable_additional_properties")),
        whitespace_pattern=spec.get("whitespace_pattern") or "",
    )


def _set_input(out: pb.CreateResponseRequest, value: str | list[dict[str, Any]]) -> None:
    if isinstance(value, str):
        out.text = value
    else:
        out.items.items.extend(input_item(i, item) for i, item in enumerate(value))


def input_item(index: int, item: dict[str, Any]) -> pb.Item:
    """One input item: a message (`type` "message" or just `role`), function_call,
    function_call_output or reasoning."""
    kind = item.get("type", "message" if "role" in item else None)
    where = f"input[{index}]"
    if kind == "message":
        return pb.Item(id=item.get("id") or "", message=_message(item, where))
    if kind == "function_call":
        call = pb.FunctionCallItem(
            call_id=_str(item, "call_id", where),
            name=_str(item, "name", where),
            arguments=_str(item, "arguments", where),
        )
        return pb.Item(id=item.get("id") or "", function_call=call)
    if kind == "function_call_output":
        output = pb.FunctionCallOutputItem(
            call_id=_str(item, "call_id", where), output=_output_text(item.get("output"), where)
        )
        return pb.Item(id=item.get("id") or "", function_call_output=output)
    if kind == "reasoning":
        texts = [c.get("text", "") for c in item.get("content") or [] if isinstance(c, dict)]
        summary = [s.get("text", "") for s in item.get("summary") or [] if isinstance(s, dict)]
        reasoning = pb.ReasoningItem(summary=summary, content=texts)
        return pb.Item(id=item.get("id") or "", reasoning=reasoning)
    raise bad_request(
        f"{where}: item type {kind!r} is not supported (message, function_call, "
        "function_call_output, reasoning).",
        "input",
    )


def _str(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise bad_request(f"{where}.{key} must be a string.", "input")
    return value


def _message(item: dict[str, Any], where: str) -> pb.MessageItem:
    role, content = item.get("role"), item.get("content")
    if not isinstance(role, str):
        raise bad_request(f"{where}.role must be a string.", "input")
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        return pb.MessageItem(role=role, content=[pb.ContentItemPart(**{kind: content})])
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of parts.", "input")
    return pb.MessageItem(role=role, content=[_part(p, where) for p in content])


def _part(part: Any, where: str) -> pb.ContentItemPart:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return pb.ContentItemPart(**{kind: part["text"]})
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return pb.ContentItemPart(refusal=part["refusal"])
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image = chat_pb2.ImageUrl(url=part["image_url"], detail=part.get("detail") or "")
        return pb.ContentItemPart(input_image=image)
    raise bad_request(f"{where}: content part {kind!r} is not supported or incomplete.", "input")


def _output_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # a list of input_text parts
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    raise bad_request(f"{where}.output must be a string or a list of parts.", "input")


def _tool(index: int, tool: dict[str, Any]) -> chat_pb2.Tool:
    kind = tool.get("type")
    if kind != "function":
        raise bad_request(
            f"tools[{index}]: only function tools are supported, got type {kind!r}.", "tools"
        )
    name, parameters = tool.get("name"), tool.get("parameters")
    if not isinstance(name, str) or not name:
        raise bad_request(f"tools[{index}].name is required.", "tools")
    if parameters is not None and not isinstance(parameters, dict):
        raise bad_request(f"tools[{index}].parameters must be a JSON schema object.", "tools")
    out = chat_pb2.Tool(
        name=name, description=tool.get("description") or "", strict=bool(tool.get("strict"))
    )
    if parameters is not None:
        out.parameters_json = json.dumps(parameters)
    return out


def _tool_choice(choice: str | dict[str, Any]) -> chat_pb2.ToolChoice:
    if isinstance(choice, str):
        if choice not in _MODES:
            raise bad_request(
                f"tool_choice must be one of {sorted(_MODES)} or a function.", "tool_choice"
            )
        return chat_pb2.ToolChoice(mode=_MODES[choice])
    if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
        raise bad_request(
            'tool_choice must be "none", "auto", "required" or {"type": "function", "name": …}.',
            "tool_choice",
        )
    return chat_pb2.ToolChoice(function_name=choice["name"])


def _reasoning(value: dict[str, Any] | None) -> pb.ReasoningOptions:
    value = value or {}
    return pb.ReasoningOptions(effort=value.get("effort") or "", summary=value.get("summary") or "")


def text_format(text: dict[str, Any] | None) -> pb.TextFormat:
    text = text or {}
    if text.get("verbosity") is not None:
        raise bad_request("text.verbosity is not supported by this server.", "text.verbosity")
    fmt = text.get("format") or {"type": "text"}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return pb.TextFormat(text=True)
    if kind == "json_object":
        return pb.TextFormat(json_object=True)
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise bad_request(
                "text.format.schema must be a JSON schema object.", "text.format.schema"
            )
        return pb.TextFormat(
            json_schema=pb.JsonSchemaFormat(
                name=fmt.get("name") or "",
                description=fmt.get("description") or "",
                schema=json.dumps(schema),
                strict=bool(fmt.get("strict")),
            )
        )
    raise bad_request(
        f"text.format.type must be text, json_object or json_schema, got {kind!r}.", "text.format"
    )
