"""Service dataclasses to protobuf messages (the service's outward edge)."""

from __future__ import annotations

from protoserve.common.v1 import output_pb2
from service.generation import Finish, FinishKind, Usage
from service.prompts import Prompt

_FINISH_REASON = {
    FinishKind.STOP: output_pb2.FINISH_REASON_STOP,
    FinishKind.LENGTH: output_pb2.FINISH_REASON_LENGTH,
    FinishKind.ABORT: output_pb2.FINISH_REASON_ABORT,
    FinishKind.TOOL_CALLS: output_pb2.FINISH_REASON_TOOL_CALLS,
}


def finish_info(finish: Finish) -> output_pb2.FinishInfo:
    info = output_pb2.FinishInfo(reason=_FINISH_REASON[finish.kind])
    if finish.stop_string is not None:
        info.stop_string = finish.stop_string
    elif finish.stop_token_id is not None:
        info.stop_token_id = finish.stop_token_id
    return info


def usage(value: Usage) -> output_pb2.Usage:
    return output_pb2.Usage(
        prompt_tokens=value.prompt_tokens,
        completion_tokens=value.completion_tokens,
        total_tokens=value.total_tokens,
        cached_tokens=value.cached_tokens,
        reasoning_tokens=value.reasoning_tokens,
    )


def prompt_info(
    prompt: Prompt, cached_tokens: int, *, with_token_ids: bool, with_text: bool
) -> output_pb2.PromptInfo:
    info = output_pb2.PromptInfo(num_tokens=len(prompt.token_ids), num_cached_tokens=cached_tokens)
    if with_token_ids:
        info.token_ids.extend(prompt.token_ids)
    if with_text and prompt.text is not None:
        info.text = prompt.text
    return info
