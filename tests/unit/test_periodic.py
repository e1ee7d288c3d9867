from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import pgqueue
from pgqueue.periodic import Schedule


def schedule(cron: str = "*/5 * * * *", on_missed: str = "skip") -> Schedule:
    return Schedule(name="s", cron=cron, task="t", queue="q", args_json="{}",
                    on_missed=on_missed)


T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_latest_and_next_tick_include_the_exact_tick() -> None:
    s = schedule()
    assert s.latest_tick(T0) == T0
    assert s.latest_tick(T0 + timedelta(minutes=4)) == T0
    assert s.next_tick(T0) == T0 + timedelta(minutes=5)


def test_seconds_field_comes_first() -> None:
    s = schedule("*/10 * * * * *")
    assert s.next_tick(T0) == T0 + timedelta(seconds=10)


def test_a_due_tick_fires_once() -> None:
    s = schedule()
    assert s.decide(T0 - timedelta(minutes=5), T0 + timedelta(seconds=1), 10) == (T0, True)
    assert s.decide(T0, T0 + timedelta(seconds=1), 10) is None  # already handled


@pytest.mark.parametrize(("on_missed", "fires"), [("skip", False), ("run_once", True)])
def test_after_downtime_only_the_newest_tick_is_considered(on_missed: str, fires: bool) -> None:
    s = schedule(on_missed=on_missed)
    now = T0 + timedelta(hours=3, minutes=2)  # 36 ticks were missed
    tick, fire = s.decide(T0, now, tolerance_seconds=10)  # type: ignore[misc]
    assert tick == T0 + timedelta(hours=3) and fire is fires


@pytest.mark.parametrize("bad", [{"cron": "61 * * * *"}, {"cron": "nonsense"},
                                 {"on_missed": "every"}])
def test_bad_schedules_are_rejected(bad: dict[str, str]) -> None:
    tasks = pgqueue.Registry()
    with pytest.raises(pgqueue.TaskError):
        tasks.periodic(**{"cron": "* * * * *", **bad})(lambda: None)  # type: ignore[arg-type]
    assert len(tasks) == 0
