"""A decoded window's tokens -> timestamped segments and where the next window starts, as
transformers' Whisper `generate` (`_retrieve_segment`) does it: consecutive timestamp
tokens end a segment; a window ending on a lone timestamp is complete; otherwise the
unfinished last segment is dropped and decoding resumes at the last timestamp."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from service.audio.features import HOP_SECONDS, INPUT_STRIDE, TIME_PRECISION


@dataclass
class Segment:
    seek: int  # mel frame where its window starts
    start: float  # seconds, from the start of the audio
    end: float
    token_ids: list[int]  # its tokens, timestamps included
    first_index: int  # position of its first token among the window's generated tokens
    text: str = ""
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    text_token_ids: list[int] = field(default_factory=list)


def split_window(
    tokens: list[int], seek: int, window_frames: int, timestamp_begin: int
) -> tuple[list[Segment], int]:
    """Segments of one window's generated tokens (EOS removed) and the frames to advance.
    `window_frames` is how much of the audio this window covered."""
    offset = seek * HOP_SECONDS
    is_stamp = [t >= timestamp_begin for t in tokens]
    single_ending = is_stamp[-2:] == [False, True]
    cuts = [i + 1 for i in range(len(tokens) - 1) if is_stamp[i] and is_stamp[i + 1]]
    if not cuts:  # one segment: the whole window
        end = int(window_frames * HOP_SECONDS / TIME_PRECISION) * TIME_PRECISION
        stamps = [t for t in tokens if t >= timestamp_begin]
        if stamps and stamps[-1] != timestamp_begin:
            end = (stamps[-1] - timestamp_begin) * TIME_PRECISION
        return [Segment(seek, offset, offset + end, list(tokens), 0)], window_frames
    if single_ending:
        cuts.append(len(tokens))
    else:
        cuts[-1] += 1  # keep the last timestamp: this was no single ending
    segments, last = [], 0
    for number, cut in enumerate(cuts):
        piece = tokens[last:cut]
        end_index = -1 if number < len(cuts) - 1 or single_ending else -2
        segments.append(
            Segment(
                seek,
                offset + (piece[0] - timestamp_begin) * TIME_PRECISION,
                offset + (piece[end_index] - timestamp_begin) * TIME_PRECISION,
                piece,
                last,
            )
        )
        last = cut
    if single_ending:
        return segments, window_frames
    return segments, (tokens[last - 2] - timestamp_begin) * INPUT_STRIDE


def compression_ratio(text: str) -> float:
    """How compressible the text is (> 2.4 often means a repetition loop)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
