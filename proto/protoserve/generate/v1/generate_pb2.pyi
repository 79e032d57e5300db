from google.api import annotations_pb2 as _annotations_pb2
from protoserve.common.v1 import chat_pb2 as _chat_pb2
from protoserve.common.v1 import output_pb2 as _output_pb2
from protoserve.common.v1 import params_pb2 as _params_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("model", "text", "token_ids", "sampling", "penalties", "stopping", "output", "prompt_options", "structured_output", "suffix", "priority", "request_id", "cache_salt", "thinking_token_budget")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    PENALTIES_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    STRUCTURED_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SUFFIX_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CACHE_SALT_FIELD_NUMBER: _ClassVar[int]
    THINKING_TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    model: str
    text: str
    token_ids: _output_pb2.TokenIds
    sampling: _params_pb2.SamplingParams
    penalties: _params_pb2.PenaltyParams
    stopping: _params_pb2.StoppingParams
    output: _params_pb2.OutputOptions
    prompt_options: _params_pb2.PromptOptions
    structured_output: _params_pb2.StructuredOutput
    suffix: str
    priority: int
    request_id: str
    cache_salt: str
    thinking_token_budget: int
    def __init__(self, model: _Optional[str] = ..., text: _Optional[str] = ..., token_ids: _Optional[_Union[_output_pb2.TokenIds, _Mapping]] = ..., sampling: _Optional[_Union[_params_pb2.SamplingParams, _Mapping]] = ..., penalties: _Optional[_Union[_params_pb2.PenaltyParams, _Mapping]] = ..., stopping: _Optional[_Union[_params_pb2.StoppingParams, _Mapping]] = ..., output: _Optional[_Union[_params_pb2.OutputOptions, _Mapping]] = ..., prompt_options: _Optional[_Union[_params_pb2.PromptOptions, _Mapping]] = ..., structured_output: _Optional[_Union[_params_pb2.StructuredOutput, _Mapping]] = ..., suffix: _Optional[str] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., cache_salt: _Optional[str] = ..., thinking_token_budget: _Optional[int] = ...) -> None: ...

class CompletionChoice(_message.Message):
    __slots__ = ("index", "text", "token_ids", "finish", "logprobs")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    finish: _output_pb2.FinishInfo
    logprobs: _containers.RepeatedCompositeFieldContainer[_output_pb2.PositionLogprobs]
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., finish: _Optional[_Union[_output_pb2.FinishInfo, _Mapping]] = ..., logprobs: _Optional[_Iterable[_Union[_output_pb2.PositionLogprobs, _Mapping]]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("request_id", "model", "prompt", "choices", "usage")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    prompt: _output_pb2.PromptInfo
    choices: _containers.RepeatedCompositeFieldContainer[CompletionChoice]
    usage: _output_pb2.Usage
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., prompt: _Optional[_Union[_output_pb2.PromptInfo, _Mapping]] = ..., choices: _Optional[_Iterable[_Union[CompletionChoice, _Mapping]]] = ..., usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ...) -> None: ...

class CompletionDelta(_message.Message):
    __slots__ = ("index", "text", "token_ids", "logprobs", "finish", "usage")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    logprobs: _containers.RepeatedCompositeFieldContainer[_output_pb2.PositionLogprobs]
    finish: _output_pb2.FinishInfo
    usage: _output_pb2.Usage
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., logprobs: _Optional[_Iterable[_Union[_output_pb2.PositionLogprobs, _Mapping]]] = ..., finish: _Optional[_Union[_output_pb2.FinishInfo, _Mapping]] = ..., usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ...) -> None: ...

class StreamEnd(_message.Message):
    __slots__ = ("usage",)
    USAGE_FIELD_NUMBER: _ClassVar[int]
    usage: _output_pb2.Usage
    def __init__(self, usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ...) -> None: ...

class GenerateStreamResponse(_message.Message):
    __slots__ = ("request_id", "model", "prompt", "delta", "end")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    prompt: _output_pb2.PromptInfo
    delta: CompletionDelta
    end: StreamEnd
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., prompt: _Optional[_Union[_output_pb2.PromptInfo, _Mapping]] = ..., delta: _Optional[_Union[CompletionDelta, _Mapping]] = ..., end: _Optional[_Union[StreamEnd, _Mapping]] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("model", "messages", "sampling", "penalties", "stopping", "output", "prompt_options", "structured_output", "template", "tools", "tool_choice", "parallel_tool_calls", "include_reasoning", "thinking_token_budget", "priority", "request_id", "cache_salt")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    PENALTIES_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    STRUCTURED_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REASONING_FIELD_NUMBER: _ClassVar[int]
    THINKING_TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CACHE_SALT_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.ChatMessage]
    sampling: _params_pb2.SamplingParams
    penalties: _params_pb2.PenaltyParams
    stopping: _params_pb2.StoppingParams
    output: _params_pb2.OutputOptions
    prompt_options: _params_pb2.PromptOptions
    structured_output: _params_pb2.StructuredOutput
    template: _chat_pb2.ChatTemplateOptions
    tools: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Tool]
    tool_choice: _chat_pb2.ToolChoice
    parallel_tool_calls: bool
    include_reasoning: bool
    thinking_token_budget: int
    priority: int
    request_id: str
    cache_salt: str
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_chat_pb2.ChatMessage, _Mapping]]] = ..., sampling: _Optional[_Union[_params_pb2.SamplingParams, _Mapping]] = ..., penalties: _Optional[_Union[_params_pb2.PenaltyParams, _Mapping]] = ..., stopping: _Optional[_Union[_params_pb2.StoppingParams, _Mapping]] = ..., output: _Optional[_Union[_params_pb2.OutputOptions, _Mapping]] = ..., prompt_options: _Optional[_Union[_params_pb2.PromptOptions, _Mapping]] = ..., structured_output: _Optional[_Union[_params_pb2.StructuredOutput, _Mapping]] = ..., template: _Optional[_Union[_chat_pb2.ChatTemplateOptions, _Mapping]] = ..., tools: _Optional[_Iterable[_Union[_chat_pb2.Tool, _Mapping]]] = ..., tool_choice: _Optional[_Union[_chat_pb2.ToolChoice, _Mapping]] = ..., parallel_tool_calls: _Optional[bool] = ..., include_reasoning: _Optional[bool] = ..., thinking_token_budget: _Optional[int] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., cache_salt: _Optional[str] = ...) -> None: ...

class ChatChoice(_message.Message):
    __slots__ = ("index", "message", "token_ids", "finish", "logprobs")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    index: int
    message: _chat_pb2.ChatMessage
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    finish: _output_pb2.FinishInfo
    logprobs: _containers.RepeatedCompositeFieldContainer[_output_pb2.PositionLogprobs]
    def __init__(self, index: _Optional[int] = ..., message: _Optional[_Union[_chat_pb2.ChatMessage, _Mapping]] = ..., token_ids: _Optional[_Iterable[int]] = ..., finish: _Optional[_Union[_output_pb2.FinishInfo, _Mapping]] = ..., logprobs: _Optional[_Iterable[_Union[_output_pb2.PositionLogprobs, _Mapping]]] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("request_id", "model", "prompt", "choices", "usage")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    prompt: _output_pb2.PromptInfo
    choices: _containers.RepeatedCompositeFieldContainer[ChatChoice]
    usage: _output_pb2.Usage
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., prompt: _Optional[_Union[_output_pb2.PromptInfo, _Mapping]] = ..., choices: _Optional[_Iterable[_Union[ChatChoice, _Mapping]]] = ..., usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ...) -> None: ...

class ToolCallDelta(_message.Message):
    __slots__ = ("index", "id", "name", "arguments")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    name: str
    arguments: str
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ...) -> None: ...

class ChatDelta(_message.Message):
    __slots__ = ("index", "role", "content", "reasoning", "tool_calls", "token_ids", "logprobs", "finish", "usage")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    role: str
    content: str
    reasoning: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCallDelta]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    logprobs: _containers.RepeatedCompositeFieldContainer[_output_pb2.PositionLogprobs]
    finish: _output_pb2.FinishInfo
    usage: _output_pb2.Usage
    def __init__(self, index: _Optional[int] = ..., role: _Optional[str] = ..., content: _Optional[str] = ..., reasoning: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCallDelta, _Mapping]]] = ..., token_ids: _Optional[_Iterable[int]] = ..., logprobs: _Optional[_Iterable[_Union[_output_pb2.PositionLogprobs, _Mapping]]] = ..., finish: _Optional[_Union[_output_pb2.FinishInfo, _Mapping]] = ..., usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ...) -> None: ...

class ChatStreamResponse(_message.Message):
    __slots__ = ("request_id", "model", "prompt", "delta", "end")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    prompt: _output_pb2.PromptInfo
    delta: ChatDelta
    end: StreamEnd
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., prompt: _Optional[_Union[_output_pb2.PromptInfo, _Mapping]] = ..., delta: _Optional[_Union[ChatDelta, _Mapping]] = ..., end: _Optional[_Union[StreamEnd, _Mapping]] = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("request_ids",)
    REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    request_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AbortResponse(_message.Message):
    __slots__ = ("aborted",)
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    aborted: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, aborted: _Optional[_Iterable[str]] = ...) -> None: ...
