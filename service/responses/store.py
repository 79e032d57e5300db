"""Stored responses: a bounded in-memory LRU of finished responses and the conversation
each one ends (for previous_response_id). Lives on the service's event loop; no locks."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from protoserve.common.v1 import chat_pb2
from protoserve.responses.v1 import responses_pb2

DEFAULT_MAX_STORED = 1024


@dataclass(frozen=True)
class StoredResponse:
    response: responses_pb2.Response
    # The turns so far without instructions (which a later turn does not inherit): earlier
    # turns, this turn's input and its output as chat messages.
    conversation: tuple[chat_pb2.ChatMessage, ...]


class ResponseStore:
    """At most `capacity` responses; storing one more evicts the least recently used.
    Capacity 0 stores nothing."""

    def __init__(self, capacity: int = DEFAULT_MAX_STORED) -> None:
        if capacity < 0:
            raise ValueError(f"the response store capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()

    def put(self, entry: StoredResponse) -> None:
        if self.capacity == 0:
            return
        key = entry.response.id
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        entry = self._entries.get(response_id)
        if entry is not None:
            self._entries.move_to_end(response_id)
        return entry

    def __len__(self) -> int:
        return len(self._entries)
