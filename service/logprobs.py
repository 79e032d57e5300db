"""Engine logprobs (token ids) -> protobuf PositionLogprobs with token text, bytes and
text offsets: a token is decoded alone, as vLLM renders logprob tokens, or written
"token_id:<id>" with return_tokens_as_token_ids."""

from __future__ import annotations

from engine.outputs import PositionLogprobs, TokenLogprob
from protoserve.common.v1 import output_pb2
from service.tokenizer import Tokenizer


class LogprobsRenderer:
    """One per choice: keeps the running text offset of its tokens."""

    def __init__(self, tokenizer: Tokenizer, as_token_ids: bool = False) -> None:
        self._tokenizer = tokenizer
        self._as_token_ids = as_token_ids
        self.text_offset = 0

    def token(self, item: TokenLogprob) -> output_pb2.TokenLogprob:
        return output_pb2.TokenLogprob(
            token_id=item.token_id,
            token=self.text(item.token_id),
            logprob=item.logprob,
            token_bytes=self._tokenizer.token_bytes(item.token_id),
            rank=item.rank,
        )

    def text(self, token_id: int) -> str:
        if self._as_token_ids:
            return f"token_id:{token_id}"
        return self._tokenizer.token_text(token_id)

    def position(self, entry: PositionLogprobs) -> output_pb2.PositionLogprobs:
        chosen = self.token(entry.chosen)
        out = output_pb2.PositionLogprobs(
            chosen=chosen,
            top=[self.token(t) for t in entry.top],
            text_offset=self.text_offset,
            requested=[self.token(t) for t in entry.requested],
        )
        self.text_offset += len(chosen.token)
        return out


def prompt_logprobs(
    tokenizer: Tokenizer,
    entries: list[PositionLogprobs | None],
    prompt_token_ids: list[int],
    as_token_ids: bool,
) -> list[output_pb2.PositionLogprobs]:
    """The prompt's entries; the first carries only the first token (no logprob)."""
    renderer = LogprobsRenderer(tokenizer, as_token_ids)
    out = []
    for token_id, entry in zip(prompt_token_ids, entries, strict=True):
        if entry is None:
            text = renderer.text(token_id)
            out.append(
                output_pb2.PositionLogprobs(
                    chosen=output_pb2.TokenLogprob(
                        token_id=token_id,
                        token=text,
                        token_bytes=tokenizer.token_bytes(token_id),
                    ),
                    text_offset=renderer.text_offset,
                )
            )
            renderer.text_offset += len(text)
        else:
            out.append(renderer.position(entry))
    return out
