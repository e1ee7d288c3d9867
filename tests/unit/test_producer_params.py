"""pgqueue.producer.params without a database: validation and normalisation of enqueue input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from pgqueue import InvalidJobError
from pgqueue.producer import params as _params


def test_defaults() -> None:
    job = _params.new_job("t")
    assert job == _params.NewJob(
        task="t", args_json="{}", queue="default", priority=0, run_at=None,
        delay_seconds=None, max_attempts=_params.DEFAULT_MAX_ATTEMPTS, unique_key=None,
    )
    assert _params.DEFAULT_MAX_ATTEMPTS == 5


def test_args_are_compact_json_keeping_unicode() -> None:
    assert _params.dump_args({"a": [1, 2.5, None, True], "é": "☃"}) == (
        '{"a":[1,2.5,null,true],"é":"☃"}'
    )


@pytest.mark.parametrize("name", ["default", "a", "Q1", "emails.high-prio_2", "9", "x" * 64])
def test_valid_queue_names(name: str) -> None:
    assert _params.validate_queue(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "_lead", ".lead", "has space", "é", "a/b", "a:b"])
def test_invalid_queue_names(name: str) -> None:
    with pytest.raises(InvalidJobError, match="not a valid queue name"):
        _params.validate_queue(name)


@pytest.mark.parametrize("name", ["t", "_private", "app.tasks:send", "x" * 200, "a-b.c_d:e"])
def test_valid_task_names(name: str) -> None:
    assert _params.validate_task(name) == name


@pytest.mark.parametrize("name", ["", "x" * 201, "-lead", "has space", "a/b", "t\n"])
def test_invalid_task_names(name: str) -> None:
    with pytest.raises(InvalidJobError, match="not a valid task name"):
        _params.validate_task(name)


def test_field_name_appears_in_name_errors() -> None:
    with pytest.raises(InvalidJobError, match=r"^jobs\.queue must be a string"):
        _params.validate_queue(1, field="jobs.queue")


@pytest.mark.parametrize("priority", [_params.PRIORITY_MIN, -1, 0, 1, _params.PRIORITY_MAX])
def test_priority_range_inclusive(priority: int) -> None:
    assert _params.new_job("t", priority=priority).priority == priority


def test_priority_bounds() -> None:
    assert (_params.PRIORITY_MIN, _params.PRIORITY_MAX) == (-1000, 1000)


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [(0, 0.0), (1.5, 1.5), (timedelta(minutes=2), 120.0), (timedelta(0), 0.0)],
)
def test_delay_normalised_to_seconds(delay: Any, seconds: float) -> None:
    assert _params.new_job("t", delay=delay).delay_seconds == seconds


def test_delay_beyond_a_century_is_refused() -> None:
    with pytest.raises(InvalidJobError, match="between 0 and 100 years"):
        _params.new_job("t", delay=timedelta(days=365 * 101))


def test_aware_run_at_kept_as_given() -> None:
    when = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert _params.new_job("t", run_at=when).run_at == when


def test_run_at_with_tzinfo_that_gives_no_offset_is_naive() -> None:
    class NoOffset(timezone.__base__):  # type: ignore[misc,name-defined]
        def utcoffset(self, dt: datetime | None) -> None:
            return None

    with pytest.raises(InvalidJobError, match="naive"):
        _params.new_job("t", run_at=datetime(2030, 1, 1, tzinfo=NoOffset()))


def test_bool_is_not_an_int_for_counts() -> None:
    with pytest.raises(InvalidJobError, match="max_attempts must be an int, got bool"):
        _params.new_job("t", max_attempts=True)


def test_max_attempts_upper_bound() -> None:
    assert _params.new_job("t", max_attempts=1_000_000).max_attempts == 1_000_000
    with pytest.raises(InvalidJobError, match="between 1 and 1000000"):
        _params.new_job("t", max_attempts=1_000_001)


def test_unique_key_bounds() -> None:
    assert _params.new_job("t", unique_key="k" * 255).unique_key == "k" * 255
    assert _params.new_job("t", unique_key="ключ").unique_key == "ключ"


def test_nesting_limit_is_exactly_200() -> None:
    value: dict[str, Any] = {}
    for _ in range(200):
        value = {"d": value}
    assert json.loads(_params.dump_args(value)) == value
    with pytest.raises(InvalidJobError, match="nested more than 200 levels"):
        _params.dump_args({"d": value})


def test_deep_list_error_names_the_path() -> None:
    with pytest.raises(InvalidJobError, match=r"^args\['a'\]\[1\]\[0\] is a complex"):
        _params.dump_args({"a": [0, [1j]]})


def test_huge_but_printable_int_is_fine() -> None:
    big = 10**4000
    assert json.loads(_params.dump_args({"n": big})) == {"n": big}


def test_run_at_and_delay_together_checked_before_their_values() -> None:
    with pytest.raises(InvalidJobError, match="not both"):
        _params.new_job("t", run_at=datetime.now(UTC), delay=-1)
