"""Stop strings matched across token boundaries.

Text is released only when no stop string can still begin in it: the longest suffix that
is a prefix of some stop string is held back until the next text decides it.
"""

from __future__ import annotations


class StopStringMatcher:
    def __init__(self, stops: tuple[str, ...], include_stop_in_output: bool = False):
        self._stops = tuple(s for s in stops if s)
        self._include = include_stop_in_output
        self._text = ""
        self._released = 0
        self._searched = 0  # no match can start before this offset
        self.matched: str | None = None

    def feed(self, new_text: str) -> str:
        """Add decoded text; return what can be released. After a match, `matched` is set
        and the returned text ends at (or after, if included) the stop string."""
        if self.matched is not None:
            return ""
        self._text += new_text
        hit = self._first_match()
        if hit is not None:
            position, stop = hit
            self.matched = stop
            end = position + len(stop) if self._include else position
            return self._release(end)
        self._searched = max(0, len(self._text) - self._longest_stop + 1)
        return self._release(len(self._text) - self._pending_prefix_length())

    def flush(self) -> str:
        """At the end of generation: everything still held back."""
        return "" if self.matched is not None else self._release(len(self._text))

    @property
    def _longest_stop(self) -> int:
        return max((len(s) for s in self._stops), default=0)

    def _first_match(self) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for stop in self._stops:
            position = self._text.find(stop, self._searched)
            if position >= 0 and (best is None or position < best[0]):
                best = (position, stop)
        return best

    def _pending_prefix_length(self) -> int:
        """Length of the longest suffix of the text that some stop string starts with."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._text)), longest, -1):
                if stop.startswith(self._text[-size:]):
                    longest = size
                    break
        return longest

    def _release(self, end: int) -> str:
        end = max(end, self._released)
        released = self._text[self._released : end]
        self._released = end
        return released
