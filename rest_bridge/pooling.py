"""The fields every pooling endpoint shares (vLLM's pooling-common params: inputs as
text, token ids or chat messages; truncation; use_activation) and their protobuf form;
POST /pooling and POST /classify onto PoolingService.Pool / Classify."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from protoserve.common.v1 import output_pb2, params_pb2
from protoserve.pooling.v1 import pooling_pb2 as pb
from rest_bridge import calls, convert, tensors
from rest_bridge.body import parse_json
from rest_bridge.chat_messages import ChatMessageIn, message_proto, template_options
from rest_bridge.errors import bad_request
from rest_bridge.grpc_client import GrpcClient, metadata
from rest_bridge.openapi import json_body
from rest_bridge.sampling import Int32, Int64

router = APIRouter()

_REMOVED_TASKS = ("score", "encode")
_SIDES = {
    "left": params_pb2.TRUNCATION_SIDE_LEFT,
    "right": params_pb2.TRUNCATION_SIDE_RIGHT,
    None: params_pb2.TRUNCATION_SIDE_UNSPECIFIED,
}


class PoolingFields(BaseModel):
    """Request fields of /v1/embeddings, /pooling, /classify (and /score, /rerank's
    common part)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    user: str | None = None
    truncate_prompt_tokens: Int32 | None = Field(default=None, ge=-1)
    truncation_side: Literal["left", "right"] | None = None
    request_id: str | None = None
    priority: Int64 = 0
    cache_salt: str | None = None
    use_activation: bool | None = None
    # vLLM fields this server refuses when set (check_unsupported_fields), never ignores.
    padding: Literal["max_length", "do_not_pad"] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    media_io_kwargs: dict[str, Any] | None = None
    late_chunking_params: dict[str, Any] | None = None

    def check_removed_fields(self) -> None:
        """`normalize` was replaced by use_activation; task "score" / "encode" are gone.
        Then the fields this server does not implement (check_unsupported_fields)."""
        self.check_unsupported_fields()
        extra = self.model_extra or {}
        if "normalize" in extra:
            raise bad_request(
                "`normalize` is no longer supported: use `use_activation` instead.", "normalize"
            )
        task = getattr(self, "task", None) or extra.get("task")
        if task in _REMOVED_TASKS:
            raise bad_request(
                f"task {task!r} is no longer supported: use the /score or /pooling endpoints "
                "with a supported task.",
                "task",
            )

    def check_unsupported_fields(self) -> None:
        """Inputs are never padded (the engine batches them by length, attention masks
        make padding invisible), the served pooling models take text only, and late
        chunking is not implemented: a request that sets these gets a 400 naming them."""
        if self.padding == "max_length":
            raise bad_request(
                "padding='max_length' is not supported: inputs are batched by length and "
                "never padded (use 'do_not_pad' or leave it unset).",
                "padding",
            )
        for name in ("mm_processor_kwargs", "media_io_kwargs"):
            if getattr(self, name):
                raise bad_request(
                    f"`{name}` is not supported: the pooling models served here take text only.",
                    name,
                )
        if self.late_chunking_params is not None:
            raise bad_request(
                "`late_chunking_params` is not supported by this server.", "late_chunking_params"
            )

    def options(self, request_id: str, add_special_tokens: bool | None = None) -> pb.PoolingOptions:
        prompt = params_pb2.PromptOptions(
            add_special_tokens=add_special_tokens,
            truncate_prompt_tokens=self.truncate_prompt_tokens,
            truncation_side=_SIDES[self.truncation_side],
        )
        return pb.PoolingOptions(
            prompt_options=prompt,
            use_activation=self.use_activation,
            priority=self.priority,
            request_id=request_id,
            cache_salt=self.cache_salt or "",
        )


class InputFields(PoolingFields):
    """Completion-style `input`, or chat-style `messages` (one conversation, or a list)."""

    input: Any = None
    add_special_tokens: bool | None = None
    messages: list[ChatMessageIn] | list[list[ChatMessageIn]] | None = None
    add_generation_prompt: bool = False
    continue_final_message: bool = False
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    def inputs(self) -> list[pb.PoolingInput]:
        if self.messages is not None:
            return self._conversations(self.messages)
        value = self.input
        if value is None:
            raise bad_request("Either `input` or `messages` is required.", "input")
        if isinstance(value, str):
            return [pb.PoolingInput(text=value)]
        if not isinstance(value, list) or not value:
            raise bad_request(_INPUT_ERROR, "input")
        if all(_is_token(v) for v in value):
            return [_token_input(value)]
        if all(isinstance(v, str) for v in value):
            return [pb.PoolingInput(text=v) for v in value]
        if all(isinstance(v, list) and v and all(_is_token(t) for t in v) for v in value):
            return [_token_input(v) for v in value]
        if all(isinstance(v, dict) and "role" in v for v in value):
            return self._conversations([ChatMessageIn.model_validate(v) for v in value])
        raise bad_request(_INPUT_ERROR, "input")

    def _conversations(self, messages: list) -> list[pb.PoolingInput]:
        conversations = messages if messages and isinstance(messages[0], list) else [messages]
        template = template_options(
            add_generation_prompt=self.add_generation_prompt,
            continue_final_message=self.continue_final_message,
            chat_template=self.chat_template,
            chat_template_kwargs=self.chat_template_kwargs,
        )
        return [
            pb.PoolingInput(
                conversation=pb.Conversation(
                    messages=[message_proto(m) for m in conversation], template=template
                )
            )
            for conversation in conversations
        ]


_INPUT_ERROR = (
    "`input` must be a string, a list of strings, a list of token ids, a list of token id "
    "lists, or chat messages."
)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def _token_input(ids: list[int]) -> pb.PoolingInput:
    return pb.PoolingInput(token_ids=output_pb2.TokenIds(ids=ids))


def usage(value: output_pb2.Usage) -> dict:
    """Pooling usage: no completion tokens."""
    return {
        "prompt_tokens": value.prompt_tokens,
        "total_tokens": value.total_tokens,
        "completion_tokens": 0,
        "prompt_tokens_details": None,
    }


def encoded(value: pb.Tensor, encoding_format: str, embed_dtype: str, endianness: str):
    """A pooled tensor as a JSON value: nested floats, or base64 of its raw bytes."""
    if encoding_format == "base64":
        return tensors.to_base64(tensors.array(value), embed_dtype, endianness)
    return tensors.as_floats(value)


# -- POST /pooling -----------------------------------------------------------------------
_TASKS = {
    None: pb.POOLING_TASK_UNSPECIFIED,
    "embed": pb.POOLING_TASK_EMBED,
    "classify": pb.POOLING_TASK_CLASSIFY,
    "token_embed": pb.POOLING_TASK_TOKEN_EMBED,
    "token_classify": pb.POOLING_TASK_TOKEN_CLASSIFY,
}


class PoolingRequest(InputFields):
    task: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    embed_dtype: tensors.EmbedDtype = "float32"
    endianness: tensors.Endianness = "native"
    dimensions: Int32 | None = None


@router.post("/pooling", openapi_extra=json_body(PoolingRequest))
async def create_pooling(request: Request) -> dict:
    req = await parse_json(request, PoolingRequest)
    req.check_removed_fields()
    if req.task == "plugin":
        raise bad_request("IO-processor plugins are not supported by this server.", "task")
    if req.task not in _TASKS:
        raise bad_request(f"task must be one of {sorted(k for k in _TASKS if k)}.", "task")
    request_id = convert.request_id(request, req.request_id)
    message = pb.PoolRequest(
        model=req.model or "",
        inputs=req.inputs(),
        options=req.options(request_id, req.add_special_tokens),
        task=_TASKS[req.task],
        dimensions=req.dimensions,
    )
    client: GrpcClient = request.app.state.grpc
    [reply] = await calls.unary(
        request, [client.pooling.Pool(message, metadata=metadata(request_id, request))]
    )
    return {
        "id": f"pooling-{request_id}",
        "object": "list",
        "created": convert.now(),
        "model": reply.model,
        "data": [
            {
                "index": item.index,
                "object": "pooling",
                "data": encoded(item.data, req.encoding_format, req.embed_dtype, req.endianness),
            }
            for item in reply.data
        ],
        "usage": usage(reply.usage),
    }


# -- POST /classify ----------------------------------------------------------------------
@router.post("/classify", openapi_extra=json_body(InputFields))
async def create_classify(request: Request) -> dict:
    req = await parse_json(request, InputFields)
    req.check_removed_fields()
    request_id = convert.request_id(request, req.request_id)
    message = pb.ClassifyRequest(
        model=req.model or "",
        inputs=req.inputs(),
        options=req.options(request_id, req.add_special_tokens),
    )
    client: GrpcClient = request.app.state.grpc
    [reply] = await calls.unary(
        request, [client.pooling.Classify(message, metadata=metadata(request_id, request))]
    )
    return {
        "id": f"classify-{request_id}",
        "object": "list",
        "created": convert.now(),
        "model": reply.model,
        "data": [
            {
                "index": item.index,
                "label": item.label or None,
                "probs": list(item.probs),
                "num_classes": item.num_classes,
            }
            for item in reply.data
        ],
        "usage": usage(reply.usage),
    }
