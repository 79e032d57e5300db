"""Per-request encoder state of encoder-decoder models (Whisper), beside the paged cache.

A request arrives with an EncoderInput (e.g. one 30 s window of log-mel features). The
first step that schedules it runs the encoder, batched with every other request that needs
it, and keeps the result: every decoder layer's cross-attention K/V, one dense tensor per
request (the encoder side has a fixed length, so it is not paged). The input is dropped
once encoded. Entries die with the request: the engine calls `release` when it finishes
or is aborted (preemption keeps them: a recompute re-runs only the decoder).

Decoding steps gather the K/V of their single-token rows into one batch tensor; that
gather is reused while the set of decoding requests does not change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

# Windows encoded per forward pass: bounds the activations of a burst of new requests.
MAX_ENCODER_BATCH = 8


@dataclass(frozen=True)
class EncoderInput:
    """What a request gives the encoder, plus the model's decoding rules for it."""

    features: torch.Tensor  # the encoder's input (Whisper: log-mel [n_mels, frames])
    decoding: Any = None  # model-specific rules (Whisper: WhisperDecoding)


class EncoderCache:
    def __init__(
        self,
        encode: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self._encode = encode  # features [B, ...] -> per-request state [B, ...]
        self.device = device
        self.dtype = dtype
        self._pending: dict[str, torch.Tensor] = {}  # request id -> features not yet encoded
        self._encoded: dict[str, torch.Tensor] = {}  # request id -> cross K/V
        self._stacked: tuple[tuple[str, ...], torch.Tensor] | None = None
        self.num_encoded = 0  # windows run through the encoder (cumulative)

    def add(self, request_id: str, features: torch.Tensor) -> None:
        assert request_id not in self._pending and request_id not in self._encoded
        self._pending[request_id] = features

    def release(self, request_id: str) -> None:
        """Drop everything the request holds (finish, abort). Idempotent."""
        self._pending.pop(request_id, None)
        self._encoded.pop(request_id, None)
        if self._stacked is not None and request_id in self._stacked[0]:
            self._stacked = None

    def request_ids(self) -> set[str]:
        return set(self._pending) | set(self._encoded)

    @property
    def nbytes(self) -> int:
        """Memory held by encoded K/V (not counting the decode gather)."""
        return sum(t.nbytes for t in self._encoded.values())

    def encode_missing(self, request_ids: Sequence[str]) -> None:
        """Run the encoder for the requests that have not been encoded, batched."""
        missing = [r for r in dict.fromkeys(request_ids) if r not in self._encoded]
        for start in range(0, len(missing), MAX_ENCODER_BATCH):
            chunk = missing[start : start + MAX_ENCODER_BATCH]
            features = torch.stack([self._pending[r] for r in chunk])
            encoded = self._encode(features.to(self.device, self.dtype))
            for request_id, state in zip(chunk, encoded, strict=True):
                self._encoded[request_id] = state
                del self._pending[request_id]
            self.num_encoded += len(chunk)

    def get(self, request_id: str) -> torch.Tensor:
        return self._encoded[request_id]

    def stacked(self, request_ids: Sequence[str]) -> torch.Tensor:
        """The requests' states stacked in order; reused while the ids stay the same."""
        key = tuple(request_ids)
        if self._stacked is None or self._stacked[0] != key:
            self._stacked = (key, torch.stack([self._encoded[r] for r in key]))
        return self._stacked[1]
