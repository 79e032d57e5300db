from google.api import annotations_pb2 as _annotations_pb2
from protoserve.common.v1 import chat_pb2 as _chat_pb2
from protoserve.common.v1 import output_pb2 as _output_pb2
from protoserve.common.v1 import params_pb2 as _params_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ItemStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_STATUS_UNSPECIFIED: _ClassVar[ItemStatus]
    ITEM_STATUS_IN_PROGRESS: _ClassVar[ItemStatus]
    ITEM_STATUS_COMPLETED: _ClassVar[ItemStatus]
    ITEM_STATUS_INCOMPLETE: _ClassVar[ItemStatus]

class Truncation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUNCATION_UNSPECIFIED: _ClassVar[Truncation]
    TRUNCATION_DISABLED: _ClassVar[Truncation]
    TRUNCATION_AUTO: _ClassVar[Truncation]

class ResponseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESPONSE_STATUS_UNSPECIFIED: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_QUEUED: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_IN_PROGRESS: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_COMPLETED: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_INCOMPLETE: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_CANCELLED: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_FAILED: _ClassVar[ResponseStatus]
ITEM_STATUS_UNSPECIFIED: ItemStatus
ITEM_STATUS_IN_PROGRESS: ItemStatus
ITEM_STATUS_COMPLETED: ItemStatus
ITEM_STATUS_INCOMPLETE: ItemStatus
TRUNCATION_UNSPECIFIED: Truncation
TRUNCATION_DISABLED: Truncation
TRUNCATION_AUTO: Truncation
RESPONSE_STATUS_UNSPECIFIED: ResponseStatus
RESPONSE_STATUS_QUEUED: ResponseStatus
RESPONSE_STATUS_IN_PROGRESS: ResponseStatus
RESPONSE_STATUS_COMPLETED: ResponseStatus
RESPONSE_STATUS_INCOMPLETE: ResponseStatus
RESPONSE_STATUS_CANCELLED: ResponseStatus
RESPONSE_STATUS_FAILED: ResponseStatus

class ContentItemPart(_message.Message):
    __slots__ = ("input_text", "input_image", "output_text", "refusal", "reasoning_text", "logprobs")
    INPUT_TEXT_FIELD_NUMBER: _ClassVar[int]
    INPUT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TEXT_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    REASONING_TEXT_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    input_text: str
    input_image: _chat_pb2.ImageUrl
    output_text: str
    refusal: str
    reasoning_text: str
    logprobs: _containers.RepeatedCompositeFieldContainer[_output_pb2.PositionLogprobs]
    def __init__(self, input_text: _Optional[str] = ..., input_image: _Optional[_Union[_chat_pb2.ImageUrl, _Mapping]] = ..., output_text: _Optional[str] = ..., refusal: _Optional[str] = ..., reasoning_text: _Optional[str] = ..., logprobs: _Optional[_Iterable[_Union[_output_pb2.PositionLogprobs, _Mapping]]] = ...) -> None: ...

class MessageItem(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: _containers.RepeatedCompositeFieldContainer[ContentItemPart]
    def __init__(self, role: _Optional[str] = ..., content: _Optional[_Iterable[_Union[ContentItemPart, _Mapping]]] = ...) -> None: ...

class FunctionCallItem(_message.Message):
    __slots__ = ("call_id", "name", "arguments")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    name: str
    arguments: str
    def __init__(self, call_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ...) -> None: ...

class FunctionCallOutputItem(_message.Message):
    __slots__ = ("call_id", "output")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    output: str
    def __init__(self, call_id: _Optional[str] = ..., output: _Optional[str] = ...) -> None: ...

class ReasoningItem(_message.Message):
    __slots__ = ("summary", "content")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    summary: _containers.RepeatedScalarFieldContainer[str]
    content: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, summary: _Optional[_Iterable[str]] = ..., content: _Optional[_Iterable[str]] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("id", "status", "message", "function_call", "function_call_output", "reasoning")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_CALL_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_CALL_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: ItemStatus
    message: MessageItem
    function_call: FunctionCallItem
    function_call_output: FunctionCallOutputItem
    reasoning: ReasoningItem
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[ItemStatus, str]] = ..., message: _Optional[_Union[MessageItem, _Mapping]] = ..., function_call: _Optional[_Union[FunctionCallItem, _Mapping]] = ..., function_call_output: _Optional[_Union[FunctionCallOutputItem, _Mapping]] = ..., reasoning: _Optional[_Union[ReasoningItem, _Mapping]] = ...) -> None: ...

class ItemList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class TextFormat(_message.Message):
    __slots__ = ("text", "json_object", "json_schema")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    JSON_OBJECT_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    text: bool
    json_object: bool
    json_schema: JsonSchemaFormat
    def __init__(self, text: _Optional[bool] = ..., json_object: _Optional[bool] = ..., json_schema: _Optional[_Union[JsonSchemaFormat, _Mapping]] = ...) -> None: ...

class JsonSchemaFormat(_message.Message):
    __slots__ = ("name", "description", "schema", "strict")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    schema: str
    strict: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., schema: _Optional[str] = ..., strict: _Optional[bool] = ...) -> None: ...

class ReasoningOptions(_message.Message):
    __slots__ = ("effort", "summary")
    EFFORT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    effort: str
    summary: str
    def __init__(self, effort: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class CreateResponseRequest(_message.Message):
    __slots__ = ("model", "text", "items", "instructions", "max_output_tokens", "sampling", "penalties", "stopping", "tools", "tool_choice", "parallel_tool_calls", "max_tool_calls", "previous_response_id", "store", "background", "reasoning", "text_format", "top_logprobs", "truncation", "include", "metadata", "user", "structured_output", "include_reasoning", "priority", "request_id", "cache_salt")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    PENALTIES_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    TEXT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    TOP_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    STRUCTURED_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REASONING_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CACHE_SALT_FIELD_NUMBER: _ClassVar[int]
    model: str
    text: str
    items: ItemList
    instructions: str
    max_output_tokens: int
    sampling: _params_pb2.SamplingParams
    penalties: _params_pb2.PenaltyParams
    stopping: _params_pb2.StoppingParams
    tools: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Tool]
    tool_choice: _chat_pb2.ToolChoice
    parallel_tool_calls: bool
    max_tool_calls: int
    previous_response_id: str
    store: bool
    background: bool
    reasoning: ReasoningOptions
    text_format: TextFormat
    top_logprobs: int
    truncation: Truncation
    include: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    user: str
    structured_output: _params_pb2.StructuredOutput
    include_reasoning: bool
    priority: int
    request_id: str
    cache_salt: str
    def __init__(self, model: _Optional[str] = ..., text: _Optional[str] = ..., items: _Optional[_Union[ItemList, _Mapping]] = ..., instructions: _Optional[str] = ..., max_output_tokens: _Optional[int] = ..., sampling: _Optional[_Union[_params_pb2.SamplingParams, _Mapping]] = ..., penalties: _Optional[_Union[_params_pb2.PenaltyParams, _Mapping]] = ..., stopping: _Optional[_Union[_params_pb2.StoppingParams, _Mapping]] = ..., tools: _Optional[_Iterable[_Union[_chat_pb2.Tool, _Mapping]]] = ..., tool_choice: _Optional[_Union[_chat_pb2.ToolChoice, _Mapping]] = ..., parallel_tool_calls: _Optional[bool] = ..., max_tool_calls: _Optional[int] = ..., previous_response_id: _Optional[str] = ..., store: _Optional[bool] = ..., background: _Optional[bool] = ..., reasoning: _Optional[_Union[ReasoningOptions, _Mapping]] = ..., text_format: _Optional[_Union[TextFormat, _Mapping]] = ..., top_logprobs: _Optional[int] = ..., truncation: _Optional[_Union[Truncation, str]] = ..., include: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., user: _Optional[str] = ..., structured_output: _Optional[_Union[_params_pb2.StructuredOutput, _Mapping]] = ..., include_reasoning: _Optional[bool] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., cache_salt: _Optional[str] = ...) -> None: ...

class ResponseError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("id", "created_at", "model", "status", "incomplete_reason", "output", "usage", "error", "request", "completed_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_REASON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    created_at: int
    model: str
    status: ResponseStatus
    incomplete_reason: str
    output: _containers.RepeatedCompositeFieldContainer[Item]
    usage: _output_pb2.Usage
    error: ResponseError
    request: CreateResponseRequest
    completed_at: int
    def __init__(self, id: _Optional[str] = ..., created_at: _Optional[int] = ..., model: _Optional[str] = ..., status: _Optional[_Union[ResponseStatus, str]] = ..., incomplete_reason: _Optional[str] = ..., output: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ..., error: _Optional[_Union[ResponseError, _Mapping]] = ..., request: _Optional[_Union[CreateResponseRequest, _Mapping]] = ..., completed_at: _Optional[int] = ...) -> None: ...

class GetResponseRequest(_message.Message):
    __slots__ = ("response_id",)
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    response_id: str
    def __init__(self, response_id: _Optional[str] = ...) -> None: ...

class CancelResponseRequest(_message.Message):
    __slots__ = ("response_id",)
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    response_id: str
    def __init__(self, response_id: _Optional[str] = ...) -> None: ...

class ItemRef(_message.Message):
    __slots__ = ("item_id", "output_index", "content_index")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    CONTENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    output_index: int
    content_index: int
    def __init__(self, item_id: _Optional[str] = ..., output_index: _Optional[int] = ..., content_index: _Optional[int] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("ref", "delta", "logprobs")
    REF_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    ref: ItemRef
    delta: str
    logprobs: _containers.RepeatedCompositeFieldContainer[_output_pb2.PositionLogprobs]
    def __init__(self, ref: _Optional[_Union[ItemRef, _Mapping]] = ..., delta: _Optional[str] = ..., logprobs: _Optional[_Iterable[_Union[_output_pb2.PositionLogprobs, _Mapping]]] = ...) -> None: ...

class TextDone(_message.Message):
    __slots__ = ("ref", "text", "name")
    REF_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ref: ItemRef
    text: str
    name: str
    def __init__(self, ref: _Optional[_Union[ItemRef, _Mapping]] = ..., text: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ItemEvent(_message.Message):
    __slots__ = ("output_index", "item")
    OUTPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    output_index: int
    item: Item
    def __init__(self, output_index: _Optional[int] = ..., item: _Optional[_Union[Item, _Mapping]] = ...) -> None: ...

class ContentPartEvent(_message.Message):
    __slots__ = ("ref", "part")
    REF_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    ref: ItemRef
    part: ContentItemPart
    def __init__(self, ref: _Optional[_Union[ItemRef, _Mapping]] = ..., part: _Optional[_Union[ContentItemPart, _Mapping]] = ...) -> None: ...

class ResponseEvent(_message.Message):
    __slots__ = ("sequence_number", "created", "in_progress", "output_item_added", "content_part_added", "output_text_delta", "output_text_done", "reasoning_text_delta", "reasoning_text_done", "function_call_arguments_delta", "function_call_arguments_done", "content_part_done", "output_item_done", "completed", "incomplete", "failed")
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ITEM_ADDED_FIELD_NUMBER: _ClassVar[int]
    CONTENT_PART_ADDED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TEXT_DONE_FIELD_NUMBER: _ClassVar[int]
    REASONING_TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    REASONING_TEXT_DONE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_CALL_ARGUMENTS_DELTA_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_CALL_ARGUMENTS_DONE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_PART_DONE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ITEM_DONE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    sequence_number: int
    created: Response
    in_progress: Response
    output_item_added: ItemEvent
    content_part_added: ContentPartEvent
    output_text_delta: TextDelta
    output_text_done: TextDone
    reasoning_text_delta: TextDelta
    reasoning_text_done: TextDone
    function_call_arguments_delta: TextDelta
    function_call_arguments_done: TextDone
    content_part_done: ContentPartEvent
    output_item_done: ItemEvent
    completed: Response
    incomplete: Response
    failed: Response
    def __init__(self, sequence_number: _Optional[int] = ..., created: _Optional[_Union[Response, _Mapping]] = ..., in_progress: _Optional[_Union[Response, _Mapping]] = ..., output_item_added: _Optional[_Union[ItemEvent, _Mapping]] = ..., content_part_added: _Optional[_Union[ContentPartEvent, _Mapping]] = ..., output_text_delta: _Optional[_Union[TextDelta, _Mapping]] = ..., output_text_done: _Optional[_Union[TextDone, _Mapping]] = ..., reasoning_text_delta: _Optional[_Union[TextDelta, _Mapping]] = ..., reasoning_text_done: _Optional[_Union[TextDone, _Mapping]] = ..., function_call_arguments_delta: _Optional[_Union[TextDelta, _Mapping]] = ..., function_call_arguments_done: _Optional[_Union[TextDone, _Mapping]] = ..., content_part_done: _Optional[_Union[ContentPartEvent, _Mapping]] = ..., output_item_done: _Optional[_Union[ItemEvent, _Mapping]] = ..., completed: _Optional[_Union[Response, _Mapping]] = ..., incomplete: _Optional[_Union[Response, _Mapping]] = ..., failed: _Optional[_Union[Response, _Mapping]] = ...) -> None: ...
