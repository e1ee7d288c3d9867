"""The producer's reading of a queue's room, without a database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgqueue.errors import PgQueueError, QueueFullError
from pgqueue.producer import hooks
from pgqueue.producer.backpressure import check_room, check_rooms, queues_of
from pgqueue.producer.params import new_job


@pytest.fixture
def events() -> Iterator[list[hooks.QueueDepth]]:
    seen: list[hooks.QueueDepth] = []
    hooks.on_queue_depth(seen.append)
    try:
        yield seen
    finally:
        hooks._depth_listeners.remove(seen.append)


def test_a_queue_without_bounds_is_never_refused(events: list[hooks.QueueDepth]) -> None:
    check_room("q", None, None, None, 10**6)
    check_room("q", 5, None, 4, 1)  # exactly fills it
    assert events == []


def test_a_refusal_names_queue_limit_depth_and_count(events: list[hooks.QueueDepth]) -> None:
    with pytest.raises(QueueFullError) as refused:
        check_room("mail", 5, None, 4, 2)
    err = refused.value
    assert (err.queue, err.max_depth, err.depth, err.adding) == ("mail", 5, 4, 2)
    assert isinstance(err, PgQueueError)
    assert str(err).startswith("queue 'mail' is full: it holds 4 live jobs and its "
                               "max_depth is 5; 2 jobs refused, nothing was inserted")
    assert events == [hooks.QueueDepth("mail", 4, 2, 5, None, refused=True)]


def test_warn_depth_only_reports(events: list[hooks.QueueDepth],
                                 caplog: pytest.LogCaptureFixture) -> None:
    check_room("mail", None, 3, 3, 1)
    assert events == [hooks.QueueDepth("mail", 3, 1, None, 3, refused=False)]
    assert caplog.records[0].getMessage() == "enqueue took the queue past its warn_depth"


def test_a_bulk_refused_for_one_queue_warns_about_none(events: list[hooks.QueueDepth]) -> None:
    jobs = [new_job("t", queue="a", trace_context=None)] * 3 + [
        new_job("t", queue="b", trace_context=None)]
    assert queues_of(jobs) == ["a", "b"]
    with pytest.raises(QueueFullError) as refused:
        check_rooms((["a", "b"], [None, 2], [1, None], [1, 2]), jobs)
    assert (refused.value.queue, refused.value.adding) == ("b", 1)
    assert [e.refused for e in events] == [True]
    check_rooms((None, None, None, None), jobs)  # no queue of the batch has a bound


def test_a_failing_listener_never_fails_the_enqueue(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: hooks.QueueDepth) -> None:
        raise RuntimeError("listener bug")

    hooks.on_queue_depth(broken)
    try:
        check_room("mail", None, 1, 5, 1)
    finally:
        hooks._depth_listeners.remove(broken)
    assert "queue depth listener failed" in caplog.text
