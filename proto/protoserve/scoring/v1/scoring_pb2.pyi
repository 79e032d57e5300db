from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from protoserve.common.v1 import chat_pb2 as _chat_pb2
from protoserve.common.v1 import output_pb2 as _output_pb2
from protoserve.pooling.v1 import pooling_pb2 as _pooling_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreInput(_message.Message):
    __slots__ = ("text", "content")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    text: str
    content: MultiModal
    def __init__(self, text: _Optional[str] = ..., content: _Optional[_Union[MultiModal, _Mapping]] = ...) -> None: ...

class MultiModal(_message.Message):
    __slots__ = ("parts",)
    PARTS_FIELD_NUMBER: _ClassVar[int]
    parts: _containers.RepeatedCompositeFieldContainer[_chat_pb2.ContentPart]
    def __init__(self, parts: _Optional[_Iterable[_Union[_chat_pb2.ContentPart, _Mapping]]] = ...) -> None: ...

class ScoreOptions(_message.Message):
    __slots__ = ("pooling", "max_tokens_per_query", "max_tokens_per_doc", "instruction", "chat_template_kwargs")
    POOLING_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_PER_QUERY_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_PER_DOC_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_KWARGS_FIELD_NUMBER: _ClassVar[int]
    pooling: _pooling_pb2.PoolingOptions
    max_tokens_per_query: int
    max_tokens_per_doc: int
    instruction: str
    chat_template_kwargs: _struct_pb2.Struct
    def __init__(self, pooling: _Optional[_Union[_pooling_pb2.PoolingOptions, _Mapping]] = ..., max_tokens_per_query: _Optional[int] = ..., max_tokens_per_doc: _Optional[int] = ..., instruction: _Optional[str] = ..., chat_template_kwargs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("model", "queries", "documents", "options")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    queries: _containers.RepeatedCompositeFieldContainer[ScoreInput]
    documents: _containers.RepeatedCompositeFieldContainer[ScoreInput]
    options: ScoreOptions
    def __init__(self, model: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[ScoreInput, _Mapping]]] = ..., documents: _Optional[_Iterable[_Union[ScoreInput, _Mapping]]] = ..., options: _Optional[_Union[ScoreOptions, _Mapping]] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("index", "score")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    index: int
    score: float
    def __init__(self, index: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("request_id", "model", "data", "usage")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    data: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    usage: _output_pb2.Usage
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., data: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ..., usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("model", "query", "documents", "top_n", "options")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    query: ScoreInput
    documents: _containers.RepeatedCompositeFieldContainer[ScoreInput]
    top_n: int
    options: ScoreOptions
    def __init__(self, model: _Optional[str] = ..., query: _Optional[_Union[ScoreInput, _Mapping]] = ..., documents: _Optional[_Iterable[_Union[ScoreInput, _Mapping]]] = ..., top_n: _Optional[int] = ..., options: _Optional[_Union[ScoreOptions, _Mapping]] = ...) -> None: ...

class RerankResult(_message.Message):
    __slots__ = ("index", "document", "relevance_score")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_SCORE_FIELD_NUMBER: _ClassVar[int]
    index: int
    document: ScoreInput
    relevance_score: float
    def __init__(self, index: _Optional[int] = ..., document: _Optional[_Union[ScoreInput, _Mapping]] = ..., relevance_score: _Optional[float] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("request_id", "model", "results", "usage")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    results: _containers.RepeatedCompositeFieldContainer[RerankResult]
    usage: _output_pb2.Usage
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., results: _Optional[_Iterable[_Union[RerankResult, _Mapping]]] = ..., usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ...) -> None: ...

class TextOrTokens(_message.Message):
    __slots__ = ("text", "token_ids")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    token_ids: _output_pb2.TokenIds
    def __init__(self, text: _Optional[str] = ..., token_ids: _Optional[_Union[_output_pb2.TokenIds, _Mapping]] = ...) -> None: ...

class GenerativeScoreRequest(_message.Message):
    __slots__ = ("model", "query", "items", "label_token_ids", "apply_softmax", "item_first", "add_special_tokens", "priority", "request_id", "cache_salt")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    LABEL_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    APPLY_SOFTMAX_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIRST_FIELD_NUMBER: _ClassVar[int]
    ADD_SPECIAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CACHE_SALT_FIELD_NUMBER: _ClassVar[int]
    model: str
    query: TextOrTokens
    items: _containers.RepeatedCompositeFieldContainer[TextOrTokens]
    label_token_ids: _containers.RepeatedScalarFieldContainer[int]
    apply_softmax: bool
    item_first: bool
    add_special_tokens: bool
    priority: int
    request_id: str
    cache_salt: str
    def __init__(self, model: _Optional[str] = ..., query: _Optional[_Union[TextOrTokens, _Mapping]] = ..., items: _Optional[_Iterable[_Union[TextOrTokens, _Mapping]]] = ..., label_token_ids: _Optional[_Iterable[int]] = ..., apply_softmax: _Optional[bool] = ..., item_first: _Optional[bool] = ..., add_special_tokens: _Optional[bool] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., cache_salt: _Optional[str] = ...) -> None: ...

class GenerativeScoreResponse(_message.Message):
    __slots__ = ("request_id", "model", "data", "usage")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    data: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    usage: _output_pb2.Usage
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., data: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ..., usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ...) -> None: ...
