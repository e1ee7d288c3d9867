"""The cursors of fair queues (pgqueue.worker.key_rounds)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from pgqueue.types import Job
from pgqueue.worker.key_rounds import KeyRounds

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(queue: str, key: str | None) -> Job:
    return Job(1, queue, "t", {}, 0, 1, 5, NOW, NOW, NOW, concurrency_key=key)


def test_the_cursor_moves_to_the_last_key_served_and_wraps_when_none_is_after_it() -> None:
    rounds = KeyRounds(["fair", "plain"], {"fair"})
    assert rounds.params() == ([True, False], [None, None])
    rounds.record([job("fair", "b"), job("fair", "d"), job("plain", "z"), job("fair", None)])
    assert rounds.cursors == ["d", None]
    rounds.record([job("fair", "a"), job("fair", "c")])  # a wrapped round: none after d
    assert rounds.cursors == [None, None]
    rounds.record([job("fair", "e"), job("fair", "a")])
    assert rounds.cursors == ["e", None]


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=8), max_size=20))
def test_the_cursor_is_always_a_key_served_after_the_one_before_or_none(
        claims: list[list[str]]) -> None:
    rounds = KeyRounds(["q"], {"q"})
    for keys in claims:
        before = rounds.cursors[0]
        rounds.record([job("q", k) for k in keys])
        after = rounds.cursors[0]
        later = [k for k in keys if before is None or k > before]
        assert after == (max(later) if later else None)
