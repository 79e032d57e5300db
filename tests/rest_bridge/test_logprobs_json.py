"""The bridge's logprobs shapes: -inf and NaN become -9999.0 (JSON has no -inf), the
sampled token leads completions' top dicts, requested ids join the alternatives, and
echoed prompt entries start with nulls."""

from __future__ import annotations

import json

from protoserve.common.v1 import output_pb2
from rest_bridge.logprobs import chat_logprobs, completion_logprobs, prompt_logprobs


def _token(token_id: int, token: str, logprob: float, rank: int) -> output_pb2.TokenLogprob:
    return output_pb2.TokenLogprob(
        token_id=token_id, token=token, logprob=logprob, rank=rank, token_bytes=token.encode()
    )


ENTRY = output_pb2.PositionLogprobs(
    chosen=_token(7, " cat", float("-inf"), 900),
    top=[_token(1, " dog", -0.5, 1), _token(2, " eel", -1.5, 2)],
    requested=[_token(3, " fox", float("nan"), 40), _token(1, " dog", -0.5, 1)],
)


def test_completion_shape_clamps_and_orders() -> None:
    first = output_pb2.PositionLogprobs(chosen=_token(4, "A", 0.0, 0))
    out = completion_logprobs([first, ENTRY, ENTRY], text_offset=3, num_prompt_entries=1)
    json.dumps(out, allow_nan=False)  # no -inf / NaN left
    assert out["tokens"] == ["A", " cat", " cat"]
    assert out["token_logprobs"] == [None, -9999.0, -9999.0]
    assert out["top_logprobs"][0] is None
    assert list(out["top_logprobs"][1].items()) == [
        (" cat", -9999.0), (" dog", -0.5), (" eel", -1.5), (" fox", -9999.0)
    ]  # fmt: skip
    assert out["text_offset"] == [3, 4, 8]


def test_chat_and_prompt_shapes() -> None:
    content = chat_logprobs([ENTRY])
    json.dumps(content, allow_nan=False)
    [item] = content["content"]
    assert (
        item["token"] == " cat"
        and item["logprob"] == -9999.0
        and item["bytes"] == [32, 99, 97, 116]
    )
    assert [t["token"] for t in item["top_logprobs"]] == [" dog", " eel", " fox"]
    assert content["refusal"] is None
    prompt = prompt_logprobs([output_pb2.PositionLogprobs(), ENTRY])
    assert prompt[0] is None
    assert prompt[1]["7"] == {"logprob": -9999.0, "rank": 900, "decoded_token": " cat"}
    assert list(prompt[1]) == ["7", "1", "2", "3"]
