from __future__ import annotations

import pytest

from service.stop_strings import StopStringMatcher


def feed_all(matcher: StopStringMatcher, pieces: list[str]) -> str:
    out = ""
    for piece in pieces:
        out += matcher.feed(piece)
        if matcher.matched is not None:
            return out
    return out + matcher.flush()


def test_match_across_token_boundaries_is_cut_before_the_stop() -> None:
    matcher = StopStringMatcher(("END",))
    assert feed_all(matcher, ["hello E", "N", "D and more"]) == "hello "
    assert matcher.matched == "END"


def test_include_stop_string_in_output() -> None:
    matcher = StopStringMatcher(("END",), include_stop_in_output=True)
    assert feed_all(matcher, ["abc EN", "D tail"]) == "abc END"


def test_partial_prefix_is_held_back_until_decided() -> None:
    matcher = StopStringMatcher(("STOP",))
    assert matcher.feed("go ST") == "go "
    assert matcher.feed("ay") == "STay"
    assert matcher.flush() == ""


def test_earliest_of_several_stops_wins() -> None:
    matcher = StopStringMatcher(("b c", "c d", "x"))
    assert feed_all(matcher, ["a b", " c d"]) == "a "
    assert matcher.matched == "b c"


def test_no_stops_releases_everything_at_once() -> None:
    matcher = StopStringMatcher(())
    assert matcher.feed("abc") == "abc"
    assert matcher.flush() == ""


@pytest.mark.parametrize("split", range(1, 9))
def test_any_split_of_the_text_gives_the_same_result(split: int) -> None:
    text = "one two three four"
    pieces = [text[i : i + split] for i in range(0, len(text), split)]
    matcher = StopStringMatcher(("three",))
    assert feed_all(matcher, pieces) == "one two "
