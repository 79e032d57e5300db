from google.api import annotations_pb2 as _annotations_pb2
from protoserve.common.v1 import output_pb2 as _output_pb2
from protoserve.common.v1 import params_pb2 as _params_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_PCM16_LE: _ClassVar[AudioEncoding]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
AUDIO_ENCODING_PCM16_LE: AudioEncoding

class TranscribeRequest(_message.Message):
    __slots__ = ("model", "audio", "filename", "language", "prompt", "timestamps", "sampling", "penalties", "stopping", "to_language", "priority", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    PENALTIES_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    TO_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    audio: bytes
    filename: str
    language: str
    prompt: str
    timestamps: bool
    sampling: _params_pb2.SamplingParams
    penalties: _params_pb2.PenaltyParams
    stopping: _params_pb2.StoppingParams
    to_language: str
    priority: int
    request_id: str
    def __init__(self, model: _Optional[str] = ..., audio: _Optional[bytes] = ..., filename: _Optional[str] = ..., language: _Optional[str] = ..., prompt: _Optional[str] = ..., timestamps: _Optional[bool] = ..., sampling: _Optional[_Union[_params_pb2.SamplingParams, _Mapping]] = ..., penalties: _Optional[_Union[_params_pb2.PenaltyParams, _Mapping]] = ..., stopping: _Optional[_Union[_params_pb2.StoppingParams, _Mapping]] = ..., to_language: _Optional[str] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEEK_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: _containers.RepeatedScalarFieldContainer[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    def __init__(self, id: _Optional[int] = ..., seek: _Optional[int] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., text: _Optional[str] = ..., tokens: _Optional[_Iterable[int]] = ..., temperature: _Optional[float] = ..., avg_logprob: _Optional[float] = ..., compression_ratio: _Optional[float] = ...) -> None: ...

class AudioUsage(_message.Message):
    __slots__ = ("tokens", "duration_seconds")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    tokens: _output_pb2.Usage
    duration_seconds: float
    def __init__(self, tokens: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("request_id", "model", "text", "language", "duration_seconds", "segments", "usage")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    text: str
    language: str
    duration_seconds: float
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    usage: AudioUsage
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., text: _Optional[str] = ..., language: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., usage: _Optional[_Union[AudioUsage, _Mapping]] = ...) -> None: ...

class TranscribeStreamResponse(_message.Message):
    __slots__ = ("request_id", "model", "delta", "result")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    delta: TranscriptDelta
    result: TranscribeResponse
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., delta: _Optional[_Union[TranscriptDelta, _Mapping]] = ..., result: _Optional[_Union[TranscribeResponse, _Mapping]] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("model", "language", "sample_rate_hz", "encoding", "prompt")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    model: str
    language: str
    sample_rate_hz: int
    encoding: AudioEncoding
    prompt: str
    def __init__(self, model: _Optional[str] = ..., language: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., prompt: _Optional[str] = ...) -> None: ...

class Commit(_message.Message):
    __slots__ = ("final",)
    FINAL_FIELD_NUMBER: _ClassVar[int]
    final: bool
    def __init__(self, final: _Optional[bool] = ...) -> None: ...

class StreamTranscribeRequest(_message.Message):
    __slots__ = ("config", "audio", "commit")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    audio: bytes
    commit: Commit
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., audio: _Optional[bytes] = ..., commit: _Optional[_Union[Commit, _Mapping]] = ...) -> None: ...

class TranscriptDelta(_message.Message):
    __slots__ = ("utterance", "text", "usage")
    UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    utterance: int
    text: str
    usage: _output_pb2.Usage
    def __init__(self, utterance: _Optional[int] = ..., text: _Optional[str] = ..., usage: _Optional[_Union[_output_pb2.Usage, _Mapping]] = ...) -> None: ...

class UtteranceResult(_message.Message):
    __slots__ = ("utterance", "text", "language", "usage")
    UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    utterance: int
    text: str
    language: str
    usage: AudioUsage
    def __init__(self, utterance: _Optional[int] = ..., text: _Optional[str] = ..., language: _Optional[str] = ..., usage: _Optional[_Union[AudioUsage, _Mapping]] = ...) -> None: ...

class StreamError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class StreamReady(_message.Message):
    __slots__ = ("model", "sample_rate_hz", "max_chunk_bytes", "max_utterance_bytes", "max_stream_seconds")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_UTTERANCE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAM_SECONDS_FIELD_NUMBER: _ClassVar[int]
    model: str
    sample_rate_hz: int
    max_chunk_bytes: int
    max_utterance_bytes: int
    max_stream_seconds: float
    def __init__(self, model: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., max_chunk_bytes: _Optional[int] = ..., max_utterance_bytes: _Optional[int] = ..., max_stream_seconds: _Optional[float] = ...) -> None: ...

class StreamTranscribeResponse(_message.Message):
    __slots__ = ("request_id", "delta", "result", "error", "ready")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    delta: TranscriptDelta
    result: UtteranceResult
    error: StreamError
    ready: StreamReady
    def __init__(self, request_id: _Optional[str] = ..., delta: _Optional[_Union[TranscriptDelta, _Mapping]] = ..., result: _Optional[_Union[UtteranceResult, _Mapping]] = ..., error: _Optional[_Union[StreamError, _Mapping]] = ..., ready: _Optional[_Union[StreamReady, _Mapping]] = ...) -> None: ...
